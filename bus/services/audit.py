"""Reading and checking the audit trail, as an auditor (every chain) or as a member (its own entries).

Both refuse to report success about what they could not read: a principal without
READ on a topic gets `NotAuthorized` ("not authorised to read audit as <user>"), a
missing topic a `BusError` naming it, never "0 entries, intact".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bus.adapters.kafka import Engine, Record, TopicPartition
from bus.adapters.kafka.reading import read_to_end
from bus.core.audit import ChainReport, RouterKeys, verify_chains
from bus.core.audit_proofs import MemberChainReport, verify_member
from bus.core.receipts import ACK_TYPE, PROOF_TYPE, RECEIPT_TYPE, claimed_type, verify_router_record
from bus.core.topology import AUDIT_CHECKPOINTS_TOPIC, AUDIT_TOPIC, receipts_topic
from bus.errors import BusError, KafkaError, NotAuthorized, VerificationError


def read_topic(engine: Engine, topic: str, principal: str, *, timeout: float = 120.0) -> list[Record]:
    """Every committed record of `topic`, or an error that says why it cannot be read."""
    denied = NotAuthorized(f"not authorised to read {topic} as {principal}", f"topic {topic}")
    try:
        consumer = engine.consumer(read_committed=True)
        try:
            partitions = consumer.partitions_for(topic)
            if not partitions:  # absent, or hidden from this principal: the broker says which
                try:
                    consumer.watermarks(TopicPartition(topic, 0), timeout=10.0)
                except NotAuthorized:
                    raise
                except KafkaError:
                    pass
                raise BusError(f"topic {topic} does not exist (or {principal} may not see it); nothing to check")
        finally:
            consumer.close()
        return [r for r in read_to_end(engine, topic, timeout=timeout) if isinstance(r, Record)]
    except NotAuthorized:
        raise denied from None


def _json(record: Record) -> dict[str, Any] | None:
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class AuditReport:
    topic: str
    chains: dict[int, ChainReport]
    checkpoints_published: int = 0
    problems: list[str] = field(default_factory=list)
    """Problems outside any one chain (the public checkpoints disagree with the chains)."""

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.chains.values())

    @property
    def entries(self) -> int:
        return sum(c.entries for c in self.chains.values())


def verify_audit(engine: Engine, keys: RouterKeys, principal: str, *, topic: str = AUDIT_TOPIC,
                 checkpoints_topic: str | None = AUDIT_CHECKPOINTS_TOPIC) -> AuditReport:
    """Check every chain of `topic` (see `bus.core.audit.verify_chains`), and that every checkpoint
    published on `checkpoints_topic` is one the chains hold, identically."""
    records = read_topic(engine, topic, principal)
    chains = verify_chains(((r.partition, r.offset, r.value) for r in records), keys)
    report = AuditReport(topic, chains)
    if checkpoints_topic is None:
        return report
    held = {}
    for r in records:
        entry = _json(r)
        if entry is not None and entry.get("kind") == "checkpoint":
            held[(entry.get("chain"), entry.get("seq"))] = entry.get("hash")
    for r in read_topic(engine, checkpoints_topic, principal):
        cp = _json(r)
        report.checkpoints_published += 1
        if cp is None:
            report.problems.append(f"{checkpoints_topic} offset {r.offset} is not a checkpoint")
            continue
        chain, seq = cp.get("chain"), cp.get("seq")
        if isinstance(chain, int) and chains.get(chain) is not None and not chains[chain].ok:
            continue  # that chain's own problem is reported
        if held.get((chain, seq)) != cp.get("hash"):
            report.problems.append(f"checkpoint {seq} of chain {chain} published on {checkpoints_topic} "
                                   f"is not the one {topic} holds")
    return report


@dataclass
class MemberAuditReport:
    member: str
    chains: dict[int, MemberChainReport]
    receipts: int = 0
    rejected_records: list[str] = field(default_factory=list)
    """Records on the member's receipts topic whose router signature did not verify."""

    @property
    def ok(self) -> bool:
        return not self.rejected_records and all(c.ok for c in self.chains.values())


def verify_member_audit(engine: Engine, member: str, keys: RouterKeys, principal: str) -> MemberAuditReport:
    """What `bus audit verify --member X` checks, from `receipts.x` and `audit.checkpoints` only."""
    entries: list[dict[str, Any]] = []
    proofs: list[dict[str, Any]] = []
    rejected: list[str] = []
    count = 0
    for r in read_topic(engine, receipts_topic(member), principal):
        headers = [(k.decode("utf-8", "surrogateescape"), v) for k, v in r.headers]
        kind = claimed_type(headers)
        if kind == ACK_TYPE:
            continue  # an acknowledgement forwarded to us, signed by the member who sent it
        try:
            verified = verify_router_record(r.key, r.value, headers, keys)
        except VerificationError as exc:
            rejected.append(f"offset {r.offset}: {exc}")
            continue
        if verified.ce_type == RECEIPT_TYPE:
            count += 1
            entry = verified.value.get("audit", {}).get("entry")
            if isinstance(entry, dict):
                entries.append(entry)
        elif verified.ce_type == PROOF_TYPE:
            proofs.append(verified.value)
    checkpoints = [cp for r in read_topic(engine, AUDIT_CHECKPOINTS_TOPIC, principal) if (cp := _json(r))]
    chains = verify_member(member, entries, proofs, checkpoints, keys)
    return MemberAuditReport(member, chains, count, rejected)


def audit_entries(engine: Engine, principal: str, topic: str = AUDIT_TOPIC) -> Iterator[tuple[Record, dict[str, Any]]]:
    """Every audit entry (what `bus audit tail` shows), in chain then seq order."""
    for record in read_topic(engine, topic, principal):
        entry = _json(record)
        if entry is not None:
            yield record, entry


__all__ = ["AuditReport", "MemberAuditReport", "audit_entries", "read_topic", "verify_audit",
           "verify_member_audit"]
