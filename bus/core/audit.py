"""The audit trail: one hash chain per routing task, with signed checkpoints.

Chain p lives on partition p of the `audit` topic and records every decision of
routing task p, in order. Each entry is canonical JSON with

    chain, seq, prev_hash, hash, kind ("decision" | "checkpoint"), ...
    hash = sha256(prev_hash || canonical(entry without "hash"))      (hex; prev_hash as its hex text)

so changing, removing or reordering any entry breaks the chain at that point.
A chain alone does not stop someone who rewrites an entry *and* every hash after
it; signed checkpoints do. Every so often the router appends a checkpoint entry
that commits to the segment of decisions since the previous one:

    covers {first_seq, last_seq, head_hash, merkle_root, size}
    prev_checkpoint {seq, hash} | null, router_id, key_id, signed_at, signature

`merkle_root` is the RFC 9162 Merkle tree hash over the segment's entry hashes
(`bus.core.merkle`), so a member can check an entry about its own alert against a
checkpoint with a short proof (`bus.core.audit_proofs`). The signature is Ed25519 by
a router key the federation directory lists, over `CHECKPOINT_DOMAIN` and the
canonical JSON of the entry without `signature` and `hash`.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bus.core import merkle
from bus.core.keys import PublicKey, SigningKey
from bus.errors import VerificationError

GENESIS = "0" * 64
"""`prev_hash` of the first entry of every chain."""
DECISION = "decision"
CHECKPOINT = "checkpoint"
ENTRY_LIMIT = 4096
"""Bytes of canonical JSON an audit entry may take, whatever its input was."""
CHECKPOINT_DOMAIN = b"EPA-BUS-AUDIT-CHECKPOINT/1\x00"
"""Prefix of a checkpoint's signing input: no other bus signature can pass for one."""


_encode_text = json.encoder.encode_basestring  # what the encoder writes text with (ensure_ascii=False)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)` builds on
every call, built once."""


def canonical(entry: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string per entry."""
    return _CANONICAL.encode(entry).encode()


def canonical_text(value: Any) -> str:
    """The canonical JSON text of any value (`canonical` of a dict, before UTF-8).

    Text, None and exact ints (most members of receipts and entries) are written directly,
    as the encoder writes them, without setting up its machinery for one scalar.
    """
    kind = type(value)
    if kind is str:
        return _encode_text(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is list and all(type(item) is str for item in value):  # recipients, partner lists
        return "[" + ",".join(map(_encode_text, value)) + "]"
    if kind is dict and all(type(k) is str and type(v) in _FLAT for k, v in value.items()):  # a record's source
        return "{" + ",".join(f"{_encode_text(k)}:{_flat_text(value[k])}" for k in sorted(value)) + "}"
    return _CANONICAL.encode(value)


_FLAT = frozenset({str, int, type(None)})
"""Member types of an object `canonical_text` writes itself (exact types: no bool, no float)."""


def _flat_text(value: str | int | None) -> str:
    if value is None:
        return "null"
    return _encode_text(value) if type(value) is str else int.__repr__(value)


def compose_sorted(prefixes: Sequence[str], texts: Sequence[str]) -> str:
    """`compose` of members whose keys are fixed and known in order: `prefixes` are their
    `"key":` texts (sorted by key, made once by `member_prefixes`), `texts` their values'."""
    return "{" + ",".join([p + t for p, t in zip(prefixes, texts, strict=True)]) + "}"


def member_prefixes(keys: Sequence[str]) -> tuple[str, ...]:
    """The `"key":` texts of an object's keys, which must be given in the canonical (sorted) order:
    the caller writes the members' texts in that order too, so any other order is refused."""
    if list(keys) != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError(f"keys must be distinct and sorted: {list(keys)}")
    return tuple(f"{_encode_text(k)}:" for k in keys)


def _join_objects(*texts: str) -> str:
    """One object of the members of canonical object texts whose keys are in order across them."""
    inner = [t[1:-1] for t in texts if t != "{}"]
    return "{" + ",".join(inner) + "}"


def compose(members: dict[str, str]) -> str:
    """The canonical text of an object from its members' canonical texts (key -> text of value).

    The same text as `canonical_text` of the object itself: an object's canonical form is
    its members in key order, `"key":value`, comma-separated, in braces. So a member whose
    text is already known (a sealed audit entry inside a receipt) is not encoded again.
    """
    return "{" + ",".join(f"{_encode_text(k)}:{members[k]}" for k in sorted(members)) + "}"


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()


def recomputed_hash(entry: dict[str, Any]) -> str:
    """The hash an entry should carry, from its own content and `prev_hash`."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return entry_hash(str(body.get("prev_hash")), body)


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with milliseconds and `Z`: how audit entries write times."""
    utc = when.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class AuditChain:
    """The head of one chain: what its next entry links to."""

    chain: int = 0
    seq: int = 0
    head: str = GENESIS

    def body(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The next entry without its hash: `entry` plus chain, seq and prev_hash."""
        out = {k: v for k, v in entry.items() if k != "hash"}
        out.update(chain=self.chain, seq=self.seq + 1, prev_hash=self.head)
        return out

    def seal(self, body: dict[str, Any]) -> tuple[dict[str, Any], AuditChain]:
        """Hash a body made by `body` and return the sealed entry and the new head."""
        if body.get("seq") != self.seq + 1 or body.get("prev_hash") != self.head or body.get("chain") != self.chain:
            raise ValueError("the body does not follow this head")
        digest = entry_hash(self.head, body)
        return {**body, "hash": digest}, AuditChain(self.chain, self.seq + 1, digest)

    def link(self, entry: dict[str, Any]) -> tuple[dict[str, Any], AuditChain]:
        """Return the sealed entry and the new head, without mutating self."""
        return self.seal(self.body(entry))

    def link_fitted(self, entry: dict[str, Any], limit: int = ENTRY_LIMIT) -> tuple[dict[str, Any], AuditChain, str]:
        """`link(fit(entry, limit))`, plus the sealed entry's canonical text.

        The body is encoded once, as the members sorting before `hash` and those after it;
        the size check, the hash and the sealed entry's text are joined from those two
        texts instead of three encodings of the whole entry. The result is exactly
        `link(fit(entry))` and `canonical_text(sealed)`; an entry that needs fitting, holds
        a sealing field already or a key that is not text takes that path itself.
        """
        if not entry or not _SEAL_FIELDS.isdisjoint(entry) or not all(type(k) is str for k in entry):
            return self._link_fitted_slowly(entry, limit)
        body = self.body(entry)
        low = _CANONICAL.encode({k: v for k, v in body.items() if k < "hash"})
        high = _CANONICAL.encode({k: v for k, v in body.items() if k > "hash"})
        body_bytes = _join_objects(low, high).encode()
        seal_members = (f'"chain":{canonical_text(self.chain)}', f'"prev_hash":{canonical_text(self.head)}',
                        f'"seq":{canonical_text(self.seq + 1)}')
        # canonical(entry) is the body without those three members and their commas
        entry_size = len(body_bytes) - sum(len(m.encode()) + 1 for m in seal_members)
        if entry_size > limit - _SEAL_ROOM:
            return self._link_fitted_slowly(entry, limit)
        digest = hashlib.sha256(self.head.encode() + body_bytes).hexdigest()
        text = _join_objects(low, f'{{"hash":{canonical_text(digest)}}}', high)
        return {**body, "hash": digest}, AuditChain(self.chain, self.seq + 1, digest), text

    def _link_fitted_slowly(self, entry: dict[str, Any], limit: int) -> tuple[dict[str, Any], AuditChain, str]:
        sealed, head = self.link(fit(entry, limit))
        return sealed, head, canonical_text(sealed)

    @classmethod
    def after(cls, sealed_entry: dict[str, Any]) -> AuditChain:
        return cls(int(sealed_entry.get("chain", 0)), int(sealed_entry["seq"]), str(sealed_entry["hash"]))


# -- decision entries ---------------------------------------------------------------------------


_SEAL_ROOM = 300
_SEAL_FIELDS = frozenset({"chain", "seq", "prev_hash", "hash"})


def fit(entry: dict[str, Any], limit: int = ENTRY_LIMIT) -> dict[str, Any]:
    """The entry, or a smaller form of it, so that its sealed form stays under `limit` bytes.

    Everything copied from input is already bounded (`bus.core.bounded`); what can still
    grow is the per-partner decision map of a policy with many partners. It is replaced
    first by the delivered partners and counts per reason, then by counts only and a hash
    of the full map, so an entry never outgrows a record.
    """
    room = limit - _SEAL_ROOM  # chain, seq, prev_hash, hash and kind added when sealed
    if len(canonical(entry)) <= room:
        return entry
    decisions = entry.get("decisions")
    if isinstance(decisions, dict):
        reasons: dict[str, int] = {}
        for d in decisions.values():
            reason = str(d.get("reason", "")).partition(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        full = hashlib.sha256(canonical(decisions)).hexdigest()
        summary = {"partners": len(decisions), "by_reason": reasons, "sha256": full}
        smaller = {**entry, "decisions": None, "decisions_summary": summary}
        if len(canonical(smaller)) <= room:
            return smaller
        smaller["recipients"] = None
        summary["recipients"] = len(entry.get("recipients") or [])
        if len(canonical(smaller)) <= room:
            return smaller
    raise ValueError(f"audit entry of {len(canonical(entry))} bytes cannot be made to fit {limit}")


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentEntry:
    """A decision entry not yet covered by a checkpoint: enough to cover it and prove it."""

    seq: int
    hash: str
    receipt_to: str | None = None
    """The member told about this decision (its established producer), who gets its proof."""


@dataclass(frozen=True)
class CheckpointRef:
    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


def leaves(segment: Sequence[SegmentEntry]) -> list[bytes]:
    return [bytes.fromhex(e.hash) for e in segment]


def checkpoint_signing_input(entry: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature is made over."""
    body = {k: v for k, v in entry.items() if k not in ("signature", "hash")}
    return CHECKPOINT_DOMAIN + canonical(body)


def make_checkpoint(
    head: AuditChain,
    segment: Sequence[SegmentEntry],
    prev_checkpoint: CheckpointRef | None,
    *,
    router_id: str,
    signer: SigningKey,
    signed_at: datetime,
) -> tuple[dict[str, Any], AuditChain]:
    """The signed checkpoint entry over `segment` (the decisions since the last checkpoint).

    `segment` must end at the head: the checkpoint is appended right after it.
    """
    if not segment:
        raise ValueError("a checkpoint covers at least one entry")
    if segment[-1].seq != head.seq or segment[-1].hash != head.head:
        raise ValueError("the segment does not end at the chain's head")
    covers = {
        "first_seq": segment[0].seq,
        "last_seq": segment[-1].seq,
        "head_hash": head.head,
        "merkle_root": merkle.root(leaves(segment)).hex(),
        "size": len(segment),
    }
    body = head.body({
        "kind": CHECKPOINT,
        "covers": covers,
        "prev_checkpoint": prev_checkpoint.to_dict() if prev_checkpoint else None,
        "router_id": router_id,
        "key_id": signer.key_id,
        "signed_at": format_time(signed_at),
    })
    body["signature"] = base64.b64encode(signer.sign(checkpoint_signing_input(body))).decode()
    return head.seal(body)


class RouterKeys(Protocol):
    """Who may sign checkpoints and receipts: the routers of the federation directory."""

    def router_key(self, key_id: str, router_id: str, at: datetime) -> PublicKey:
        """The key if the directory lists it for `router_id`, valid at `at`; else VerificationError."""
        ...


def verify_checkpoint_signature(entry: dict[str, Any], keys: RouterKeys) -> None:
    """Raise VerificationError unless a router key listed for `router_id`, valid at
    `signed_at`, signed this checkpoint."""
    try:
        router_id, key_id = str(entry["router_id"]), str(entry["key_id"])
        signed_at = parse_time(str(entry["signed_at"]))
        raw = base64.b64decode(str(entry["signature"]), validate=True)
    except (KeyError, ValueError, binascii.Error) as exc:
        raise VerificationError(f"checkpoint is malformed ({type(exc).__name__}: {exc})") from None
    public = keys.router_key(key_id, router_id, signed_at)
    if not public.verify(raw, checkpoint_signing_input(entry)):
        raise VerificationError(f"checkpoint signature does not verify with key {key_id} of router {router_id}")


# -- the auditor's check ----------------------------------------------------------------------------


@dataclass
class ChainReport:
    """What `verify_chains` found on one chain."""

    chain: int
    entries: int = 0
    decisions: int = 0
    checkpoints: int = 0
    last_checkpoint: int | None = None
    """Seq of the last valid checkpoint."""
    uncovered: int = 0
    """Decision entries after the last checkpoint (not yet covered by a signature)."""
    problem: str | None = None
    problem_at: tuple[int, int | None] | None = None
    """(offset, seq) of the first problem."""

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class _ChainState:
    report: ChainReport
    expected_seq: int = 1
    head: str = GENESIS
    segment: list[SegmentEntry] = field(default_factory=list)
    prev_checkpoint: CheckpointRef | None = None


def verify_chains(records: Iterable[tuple[int, int, bytes | None]], keys: RouterKeys) -> dict[int, ChainReport]:
    """Check every chain of an audit topic: (partition, offset, value) in offset order per partition.

    Per chain: each entry parses and claims the chain of its partition; seqs run 1, 2, 3...
    with no gap, repeat (a fork) or reordering; each prev_hash is the previous entry's hash
    and each hash is recomputed. Per checkpoint: the signature (a router key the directory
    lists, valid at `signed_at`), `covers` (the segment since the previous checkpoint, its
    head hash and Merkle root recomputed), and `prev_checkpoint`. The first problem of a
    chain is reported and ends that chain's check.
    """
    states: dict[int, _ChainState] = {}
    for partition, offset, raw in records:
        state = states.setdefault(partition, _ChainState(ChainReport(partition)))
        report = state.report
        report.entries += 1
        if report.problem is not None:
            continue
        problem, seq = _check_entry(state, partition, raw, keys)
        if problem is not None:
            report.problem, report.problem_at = problem, (offset, seq)
    for state in states.values():
        state.report.uncovered = len(state.segment)
    return {p: s.report for p, s in sorted(states.items())}


def _check_entry(state: _ChainState, partition: int, raw: bytes | None,
                 keys: RouterKeys) -> tuple[str | None, int | None]:
    report = state.report
    try:
        entry = json.loads(raw or b"")
        if not isinstance(entry, dict):
            raise ValueError("not a JSON object")
        seq, prev, claimed = int(entry["seq"]), str(entry["prev_hash"]), str(entry["hash"])
        chain, kind = int(entry["chain"]), entry.get("kind", DECISION)
    except (ValueError, KeyError, TypeError) as exc:
        return f"not an audit entry ({type(exc).__name__}: {exc})", None
    if chain != partition:
        return f"entry of chain {chain} found on partition {partition}", seq
    if seq != state.expected_seq:
        if seq < state.expected_seq:
            return f"sequence {seq} again or out of order after {state.expected_seq - 1} (fork or reordering)", seq
        return f"sequence {seq}, expected {state.expected_seq} (entries missing)", seq
    if prev != state.head:
        return "prev_hash is not the previous entry's hash (an entry was removed, reordered or rewritten)", seq
    if recomputed_hash(entry) != claimed:
        return "hash does not match the entry's content (the entry was rewritten)", seq
    if kind == CHECKPOINT:
        problem = _check_checkpoint(state, entry, keys)
        if problem is not None:
            return problem, seq
        report.checkpoints += 1
        report.last_checkpoint = seq
        state.prev_checkpoint = CheckpointRef(seq, claimed)
        state.segment = []
    elif kind == DECISION:
        report.decisions += 1
        state.segment.append(SegmentEntry(seq, claimed))
    else:
        return f"unknown entry kind {str(kind)[:32]!r}", seq
    state.expected_seq, state.head = seq + 1, claimed
    return None, seq


def _check_checkpoint(state: _ChainState, entry: dict[str, Any], keys: RouterKeys) -> str | None:
    try:
        verify_checkpoint_signature(entry, keys)
    except VerificationError as exc:
        return f"checkpoint: {exc.detail}"
    covers = entry.get("covers")
    if not isinstance(covers, dict):
        return "checkpoint has no covers"
    prev = entry.get("prev_checkpoint")
    expected_prev = state.prev_checkpoint.to_dict() if state.prev_checkpoint else None
    if prev != expected_prev:
        return f"checkpoint's prev_checkpoint {prev} is not the previous checkpoint {expected_prev}"
    segment = state.segment
    if not segment:
        return "checkpoint covers no entry"
    expected = {
        "first_seq": segment[0].seq,
        "last_seq": segment[-1].seq,
        "head_hash": segment[-1].hash,
        "merkle_root": merkle.root(leaves(segment)).hex(),
        "size": len(segment),
    }
    for name, value in expected.items():
        if covers.get(name) != value:
            return (f"checkpoint covers.{name} is {str(covers.get(name))[:80]}, the chain gives {value} "
                    "(entries it signed were changed)")
    return None
