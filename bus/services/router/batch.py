"""What one transaction writes: every output of a chunk of input records, built without I/O.

For each record, in order, in its task (= its partition number):

1. a record the client could not decode -> bounded dead letter (`undecodable`) + audit entry;
2. over the size limit -> bounded dead letter (`oversized`), not verified, + audit entry;
3. otherwise the routing decision (`bus.services.routing`), then
   - routed alert: a copy to each recipient's feed, unchanged but for the unsigned
     `bus_route_rule` header (any incoming one is dropped first), and a changelog entry;
   - routed acknowledgement: the record unchanged to `receipts.<originator>`, and a
     changelog entry (its id joins the replay window);
   - rejected: the dead-letter copy (or its bounded form, `bus.core.deadletter`);
   - the audit entry, chained to the task's head; a receipt to the established producer;
   - a signed checkpoint once the task's chain has `checkpoint_every` entries uncovered,
     with its public copy and each member's audit proofs.

The builder works on a copy of the committed task state: nothing changes until the
service has committed the transaction and applies `Plan.tasks`. So a failed or aborted
transaction is retried (or bisected) from exactly the same state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bus.adapters.kafka import Capabilities, Headers, Polled, Record, TopicPartition, UndecodableRecord, text_headers
from bus.adapters.task_store import RoutedEntry
from bus.core import deadletter
from bus.core.audit import (
    AuditChain,
    CheckpointRef,
    SegmentEntry,
    canonical,
    canonical_text,
    compose_sorted,
    format_time,
    make_checkpoint,
    member_prefixes,
)
from bus.core.audit_proofs import proof_parts, public_checkpoint
from bus.core.bounded import Bounded, bounded, capped
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import EncryptionKeyOwners
from bus.core.keyring import KeyResolver
from bus.core.policy import Policy
from bus.core.receipts import PROOF_TYPE, RECEIPT_TYPE, sign_router_json, sign_router_record
from bus.core.topology import (
    ACKS_TOPIC,
    AUDIT_CHECKPOINTS_TOPIC,
    AUDIT_TOPIC,
    CHANGELOG_TOPIC,
    DLQ_TOPIC,
    receipts_topic,
)
from bus.errors import RejectReason
from bus.services.router.options import RouterIdentity, RouterOptions
from bus.services.router.state import TaskState
from bus.services.routing import Routed, RoutingResult, route, route_ack, unverified

ROUTE_RULE_HEADER = b"bus_route_rule"
"""Unsigned header on each forwarded copy: the rule that delivered it to that partner."""


@dataclass(frozen=True)
class Out:
    """One record the transaction writes."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None
    source: int | None = None
    """Index in the chunk of the input record this output is for (None: a checkpoint's)."""


@dataclass
class TaskUpdate:
    """Task p's state once the transaction committed."""

    chain: AuditChain
    segment: list[SegmentEntry]
    prev_checkpoint: CheckpointRef | None
    routed: dict[str, RoutedEntry] = field(default_factory=dict)
    changelog: list[int] = field(default_factory=list)
    """Indexes in `Plan.outputs` of this task's changelog records (their offsets move the store)."""
    checkpoints: int = 0
    segment_since: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What happened to one input record, for metrics, logs and the batch summary."""

    record: Polled
    outcome: str
    """`routed` or `rejected`."""
    reason: str | None
    detail: str
    feeds: tuple[str, ...] = ()
    result: RoutingResult | None = None


@dataclass
class Plan:
    outputs: list[Out] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    tasks: dict[int, TaskUpdate] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def checkpoints(self) -> int:
        return sum(t.checkpoints for t in self.tasks.values())


@dataclass(frozen=True)
class Context:
    """What the builder decides with, fixed for one chunk."""

    policy: Policy
    resolver: KeyResolver
    feeds: Mapping[str, str]
    options: RouterOptions
    identity: RouterIdentity
    schemas: SchemaSet
    empact_codes: EmpactCodeList
    capabilities: Capabilities
    engine: str
    partitions: int
    now: datetime
    directory_version: int | None = None
    topics: frozenset[str] | None = None
    """Topics known to exist (None: assume all do). A receipt for a member whose receipts topic
    is missing (a member not provisioned yet) is skipped, never left to time out the batch."""

    def exists(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    @property
    def key_owners(self) -> EncryptionKeyOwners | None:
        owners = self.resolver
        return owners if hasattr(owners, "encryption_key_owner") else None  # type: ignore[return-value]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class Builder:
    """Builds the plan of one transaction for one chunk (see the module docstring)."""

    def __init__(self, ctx: Context, tasks: Mapping[int, TaskState],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self._tasks = tasks
        self._clock = clock
        self.plan = Plan()
        self._routed_at = format_time(ctx.now)
        """Every entry and receipt of the chunk says when it was routed: formatted once."""
        self._topics: dict[str, str] = {}

    # -- state ---------------------------------------------------------------------------------

    def _work(self, p: int) -> TaskUpdate:
        work = self.plan.tasks.get(p)
        if work is None:
            task = self._tasks[p]
            work = self.plan.tasks[p] = TaskUpdate(task.chain, list(task.segment), task.prev_checkpoint,
                                                   segment_since=task.segment_since if task.segment else None)
        return work

    def _seen(self, p: int) -> Callable[[str], bool]:
        work, store = self._work(p), self._tasks[p].store
        return lambda mid: mid in work.routed or store.contains(mid)

    def _delivered(self, p: int) -> Callable[[str], Routed | None]:
        work, store = self._work(p), self._tasks[p].store

        def lookup(mid: str) -> Routed | None:
            entry = work.routed.get(mid) or store.get(mid)
            return None if entry is None else Routed(entry.producer, entry.recipients)
        return lookup

    def _emit(self, out: Out) -> int:
        self.plan.outputs.append(out)
        return len(self.plan.outputs) - 1

    # -- records -------------------------------------------------------------------------------

    def add(self, index: int, polled: Polled, *, force_bounded: tuple[RejectReason, str] | None = None) -> None:
        """Route one input record (index: its place in the chunk) into the plan."""
        p = polled.partition
        tp = polled.tp
        self.plan.offsets[tp] = max(self.plan.offsets.get(tp, 0), polled.offset + 1)
        if isinstance(polled, UndecodableRecord):
            self._bounded(index, polled, RejectReason.UNDECODABLE,
                          f"the Kafka client could not decode this record: {polled.problem}")
        elif force_bounded is not None:
            self._bounded(index, polled, *force_bounded)
        elif polled.size > self.ctx.options.max_record_bytes:
            self._bounded(index, polled, RejectReason.OVERSIZED,
                          f"record of {polled.size} bytes (key, value and headers) is over the limit of "
                          f"{self.ctx.options.max_record_bytes}; not verified")
        else:
            self._route(index, polled, self._decide(p, polled))
        self._checkpoint_if_full(p)

    def _decide(self, p: int, record: Record) -> RoutingResult:
        ctx = self.ctx
        headers = text_headers(record.headers)
        if record.topic == ACKS_TOPIC:
            return route_ack(record.key, record.value, headers, resolver=ctx.resolver,
                             freshness=ctx.options.freshness, seen=self._seen(p), delivered=self._delivered(p),
                             now=ctx.now, topic=record.topic, partition=record.partition, partitions=ctx.partitions)
        return route(record.key, record.value, headers, resolver=ctx.resolver, policy=ctx.policy,
                     feed_topics=ctx.feeds, freshness=ctx.options.freshness, seen=self._seen(p), now=ctx.now,
                     schemas=ctx.schemas, empact_codes=ctx.empact_codes,
                     accept_v1_0_until=ctx.options.accept_v1_0_until, topic=record.topic,
                     partition=record.partition, partitions=ctx.partitions, key_owners=ctx.key_owners)

    def _route(self, index: int, record: Record, result: RoutingResult) -> None:
        p, caps = record.partition, self.ctx.capabilities
        forwards: list[Out] = []
        if result.accepted and result.kind == "alert":
            kept = tuple((n, v) for n, v in record.headers if n != ROUTE_RULE_HEADER)
            for partner, feed in zip(result.recipients, result.feeds, strict=True):
                headers = (*kept, (ROUTE_RULE_HEADER, result.rules[partner].encode("ascii", "replace")))
                forwards.append(Out(feed, record.value, record.key, headers, source=index))
        elif result.accepted:
            assert result.originator is not None
            target = receipts_topic(result.originator)
            if self.ctx.exists(target):
                forwards.append(Out(target, record.value, record.key, record.headers, source=index))
            else:
                result = replace(result, accepted=False, reason=RejectReason.INTERNAL_ERROR, recipients=(),
                                 originator=None, detail=f"the originator's receipts topic {target} does not exist "
                                                         "(not provisioned): the acknowledgement cannot be forwarded")
        problem = next((why for o in forwards if (why := caps.cannot_send(o.key, o.value, o.headers))), None)
        if problem is not None:
            result = replace(result, accepted=False, reason=RejectReason.INTERNAL_ERROR, feeds=(), recipients=(),
                             detail=f"the router's {self.ctx.engine} engine cannot forward a record with {problem}",
                             decision=None, originator=None)
            forwards = []
        work = self._work(p)
        if result.accepted:
            for out in forwards:
                self._emit(out)
            assert result.message_id is not None and result.created is not None and result.producer is not None
            entry = RoutedEntry(result.message_id, _ms(result.created), result.producer, tuple(result.recipients))
            work.routed[entry.message_id] = entry
            work.changelog.append(self._emit(Out(CHANGELOG_TOPIC, entry.value(), entry.key(), partition=p,
                                                 source=index)))
        else:
            self._dead_letter(index, record, result)
        audited = self._audit(index, record, result)
        if result.authenticated_producer is not None and self.ctx.exists(receipts_topic(result.authenticated_producer)):
            self._receipt(index, record, result, audited)
        self.plan.verdicts.append(Verdict(record, "routed" if result.accepted else "rejected",
                                          str(result.reason) if result.reason else None, result.detail,
                                          tuple(o.topic for o in forwards), result))

    def _dead_letter(self, index: int, record: Record, result: RoutingResult) -> None:
        reason = str(result.reason)
        headers = tuple(deadletter.copy_headers(record.headers, reason, result.detail, record.topic,
                                                record.partition, record.offset))
        problem = self.ctx.capabilities.cannot_send(record.key, record.value, headers)
        if problem is None:
            self._emit(Out(DLQ_TOPIC, record.value, record.key, headers, source=index))
            return
        self._emit(Out(DLQ_TOPIC, deadletter.bounded_value(
            reason=reason, why=f"the dead-letter copy cannot be written: it would hold {problem}",
            topic=record.topic, partition=record.partition, offset=record.offset, timestamp_ms=record.timestamp_ms,
            key=record.key, value=record.value, headers=record.headers),
            None, tuple(deadletter.bounded_headers(reason, result.detail, record.topic, record.partition,
                                                   record.offset)), source=index))

    def _bounded(self, index: int, polled: Polled, reason: RejectReason, why: str) -> None:
        """A dead letter in the bounded form and an audit entry; never a receipt."""
        record = polled if isinstance(polled, Record) else None
        self._emit(Out(DLQ_TOPIC, deadletter.bounded_value(
            reason=str(reason), why=why, topic=polled.topic, partition=polled.partition, offset=polled.offset,
            timestamp_ms=record.timestamp_ms if record else None, key=record.key if record else None,
            value=record.value if record else None, headers=record.headers if record else None),
            None, tuple(deadletter.bounded_headers(str(reason), why, polled.topic, polled.partition,
                                                   polled.offset)), source=index))
        result = (unverified(text_headers(record.headers), reason, why) if record is not None
                  else RoutingResult(False, None, None, None, reason=reason, detail=capped(why)))
        self._audit(index, polled, result)
        self.plan.verdicts.append(Verdict(polled, "rejected", str(reason), capped(why), (), result))

    def _audit(self, index: int, polled: Polled, result: RoutingResult) -> tuple[dict[str, Any], str]:
        """Chain the record's audit entry; returns the sealed entry and its canonical text."""
        ctx, work = self.ctx, self._work(polled.partition)
        entry = {
            **result.audit_entry(),
            "source": {"topic": self._bounded_topic(polled.topic), "partition": polled.partition,
                       "offset": polled.offset},
            "routed_at": self._routed_at,
            "router_id": ctx.identity.router_id,
            "directory_version": ctx.directory_version,
        }
        sealed, work.chain, text = work.chain.link_fitted(entry)
        if not work.segment:
            work.segment_since = self._clock()
        work.segment.append(SegmentEntry(sealed["seq"], sealed["hash"], result.authenticated_producer))
        mid = sealed.get("message_id")
        self._emit(Out(AUDIT_TOPIC, text.encode(), mid.encode("ascii") if isinstance(mid, str) else None,
                       partition=polled.partition, source=index))
        return sealed, text

    def _bounded_topic(self, topic: str) -> Bounded:
        """`bounded(topic)`, once per topic of the chunk (a chunk reads a handful of topics)."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        found = bounded(topic)
        if isinstance(found, str):  # text only: a {"len", "sha256"} description is never shared
            self._topics[topic] = found
        return found

    def _receipt(self, index: int, record: Record, result: RoutingResult, audited: tuple[dict[str, Any], str]) -> None:
        ctx = self.ctx
        sealed, sealed_text = audited
        assert result.authenticated_producer is not None
        # The receipt embeds the sealed audit entry, whose canonical text _audit has just made:
        # its JSON is composed around that text, member by member in the canonical key order
        # (`_RECEIPT_KEYS`): the same bytes as encoding the whole receipt.
        audit = compose_sorted(_AUDIT_PREFIXES, (canonical_text(sealed["chain"]), sealed_text,
                                                 canonical_text(sealed["hash"]), canonical_text(sealed["seq"])))
        text = compose_sorted(_RECEIPT_PREFIXES, (
            audit,                                                                      # audit
            canonical_text(capped(result.detail) if result.reason else None),           # detail
            canonical_text(ctx.directory_version),                                      # directory_version
            canonical_text(result.message_id),                                          # message_id
            '"routed"' if result.accepted else '"rejected"',                            # outcome
            canonical_text(result.decision.policy_version if result.decision else None),  # policy_version
            canonical_text(str(result.reason) if result.reason else None),              # reason
            int.__repr__(len(result.recipients)),                                       # recipient_count
            canonical_text(list(result.recipients)),                                    # recipients
            canonical_text(result.kind),                                                # record
            canonical_text(self._routed_at),                                            # routed_at
            canonical_text({"topic": record.topic, "partition": record.partition,       # source
                            "offset": record.offset}),
        ))
        key = result.message_id.encode("ascii") if result.message_id else None
        data, headers = sign_router_json(ctx.identity.signer, ctx.identity.router_id, RECEIPT_TYPE,
                                         text.encode(), ctx.now, key=key)
        self._emit(Out(receipts_topic(result.authenticated_producer), data, key,
                       tuple((n.encode(), v) for n, v in headers), source=index))

    # -- checkpoints ------------------------------------------------------------------------------

    def _checkpoint_if_full(self, p: int) -> None:
        if len(self._work(p).segment) >= self.ctx.options.checkpoint_every:
            self.checkpoint(p)

    def checkpoint_due(self, p: int) -> bool:
        """The task has entries not yet covered, the oldest for longer than the interval."""
        work = self.plan.tasks.get(p)
        segment, since = (work.segment, work.segment_since) if work else (self._tasks[p].segment,
                                                                           self._tasks[p].segment_since)
        return bool(segment) and since is not None and self._clock() - since >= self.ctx.options.checkpoint_interval

    def checkpoint(self, p: int) -> None:
        """Append a signed checkpoint over task p's uncovered entries, publish it, send the proofs."""
        ctx, work = self.ctx, self._work(p)
        if not work.segment:
            return
        sealed, work.chain = make_checkpoint(work.chain, work.segment, work.prev_checkpoint,
                                             router_id=ctx.identity.router_id, signer=ctx.identity.signer,
                                             signed_at=ctx.now)
        self._emit(Out(AUDIT_TOPIC, _json(sealed), None, partition=p))
        self._emit(Out(AUDIT_CHECKPOINTS_TOPIC, _json(public_checkpoint(sealed)), str(p).encode()))
        for member, parts in proof_parts(sealed, work.segment).items():
            if not ctx.exists(receipts_topic(member)):
                continue
            for part in parts:
                data, headers = sign_router_record(ctx.identity.signer, ctx.identity.router_id, PROOF_TYPE, part,
                                                   ctx.now)
                self._emit(Out(receipts_topic(member), data, None, tuple((n.encode(), v) for n, v in headers)))
        work.prev_checkpoint = CheckpointRef(sealed["seq"], sealed["hash"])
        work.segment = []
        work.segment_since = None
        work.checkpoints += 1


_RECEIPT_KEYS = ("audit", "detail", "directory_version", "message_id", "outcome", "policy_version", "reason",
                 "recipient_count", "recipients", "record", "routed_at", "source")
"""A receipt's members, in canonical (sorted) order: `Builder._receipt` writes their texts in this order."""
_RECEIPT_PREFIXES = member_prefixes(_RECEIPT_KEYS)
_AUDIT_PREFIXES = member_prefixes(("chain", "entry", "hash", "seq"))
"""The receipt's `audit` member: chain, the sealed entry, its hash and seq (in this, sorted, order)."""


def _json(value: dict[str, Any]) -> bytes:
    return canonical(value)


def build(ctx: Context, tasks: Mapping[int, TaskState], records: Sequence[Polled], *,
          force_bounded: Mapping[int, tuple[RejectReason, str]] | None = None,
          checkpoint: Sequence[int] = (), clock: Callable[[], float] = time.monotonic) -> Plan:
    """The plan for `records` (a chunk of one poll, in order), plus due checkpoints.

    `force_bounded` (index -> reason, why): records whose transaction failed alone, written in
    the bounded form. `checkpoint`: tasks to checkpoint now (whatever their segment's age).
    """
    builder = Builder(ctx, tasks, clock)
    for index, polled in enumerate(records):
        builder.add(index, polled, force_bounded=(force_bounded or {}).get(index))
    for p in sorted(set(checkpoint) | {p for p in tasks if builder.checkpoint_due(p)}):
        if p in tasks:
            builder.checkpoint(p)
    return builder.plan
