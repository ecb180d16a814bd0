"""The audit trail as a hash chain.

Each audit entry is canonical JSON carrying `seq`, `prev_hash` and `hash`,
where `hash = sha256(prev_hash || canonical JSON of the entry without "hash")`.
Changing, removing or reordering any committed entry breaks the chain at that
point, which `verify_chain` reports. The chain lives on a single-partition
topic so there is exactly one order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()


@dataclass
class AuditChain:
    """The head of the chain: what the next entry links to."""

    head: str = GENESIS
    seq: int = 0

    def link(self, entry: dict[str, Any]) -> tuple[dict[str, Any], AuditChain]:
        """Return the sealed entry and the new head, without mutating self."""
        body = {**entry, "seq": self.seq + 1, "prev_hash": self.head}
        body.pop("hash", None)
        digest = entry_hash(self.head, body)
        return {**body, "hash": digest}, AuditChain(digest, self.seq + 1)

    @classmethod
    def after(cls, sealed_entry: dict[str, Any]) -> AuditChain:
        return cls(sealed_entry["hash"], int(sealed_entry["seq"]))


@dataclass(frozen=True)
class ChainBreak:
    position: int  # 0-based index in the walked sequence
    offset: int | None
    seq: int | None
    problem: str


def verify_chain(entries: Iterable[tuple[int | None, bytes]]) -> tuple[int, ChainBreak | None]:
    """Walk (offset, raw bytes) in order; return (entries checked, first break or None)."""
    head = GENESIS
    expected_seq = 1
    count = 0
    for position, (offset, raw) in enumerate(entries):
        count += 1
        try:
            entry = json.loads(raw)
            claimed = entry.pop("hash")
            seq, prev = int(entry["seq"]), entry["prev_hash"]
        except (ValueError, KeyError, TypeError) as exc:
            return count, ChainBreak(position, offset, None, f"not an audit entry ({exc})")
        if seq != expected_seq:
            return count, ChainBreak(position, offset, seq, f"sequence {seq}, expected {expected_seq}")
        if prev != head:
            return count, ChainBreak(position, offset, seq, "prev_hash does not match the previous entry")
        if entry_hash(prev, entry) != claimed:
            return count, ChainBreak(position, offset, seq, "hash does not match the entry's content")
        head, expected_seq = claimed, seq + 1
    return count, None
