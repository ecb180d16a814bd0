"""A member checks the audit entries about its own alerts, without reading anyone else's.

The member has, on its own topics:

- from each receipt (`receipts.<member>`), the full audit entry of the decision about
  one of its records;
- at each checkpoint that covers some of those, an audit-proof record: the checkpoint
  and, per entry, its RFC 9162 inclusion path (`proof_parts` builds them);
- on the public `audit.checkpoints`, every checkpoint of every chain.

`verify_member` then checks each entry's hash from its content, its inclusion in a
checkpoint's Merkle root, that checkpoint's signature by a listed router key, and that
the checkpoints of each chain form one unforked sequence (each names the one before
it, no two differ at one position). An entry can be rewritten only by rewriting the
signed checkpoint that covers it, which the router's key would have to sign again.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bus.core import merkle
from bus.core.audit import (
    CHECKPOINT,
    RouterKeys,
    SegmentEntry,
    leaves,
    recomputed_hash,
    verify_checkpoint_signature,
)
from bus.errors import VerificationError

PROOF_ENTRIES_PER_RECORD = 100
"""Entries per audit-proof record: keeps each record far below any size limit."""


def public_checkpoint(entry: dict[str, Any]) -> dict[str, Any]:
    """What goes on `audit.checkpoints`: the checkpoint entry as it is (it holds no alert content)."""
    if entry.get("kind") != CHECKPOINT:
        raise ValueError("not a checkpoint entry")
    return dict(entry)


def proof_parts(checkpoint: dict[str, Any], segment: Sequence[SegmentEntry]) -> dict[str, list[dict[str, Any]]]:
    """member -> audit-proof values for the entries of `segment` reported to that member.

    Each value: {checkpoint, member, part, parts, entries: [{seq, hash, index, path}]},
    at most PROOF_ENTRIES_PER_RECORD entries per value.
    """
    paths = merkle.proofs(leaves(segment))
    by_member: dict[str, list[dict[str, Any]]] = {}
    for index, (entry, path) in enumerate(zip(segment, paths, strict=True)):
        if entry.receipt_to is None:
            continue
        by_member.setdefault(entry.receipt_to, []).append(
            {"seq": entry.seq, "hash": entry.hash, "index": index, "path": [p.hex() for p in path]})
    out: dict[str, list[dict[str, Any]]] = {}
    for member, items in by_member.items():
        chunks = [items[i:i + PROOF_ENTRIES_PER_RECORD] for i in range(0, len(items), PROOF_ENTRIES_PER_RECORD)]
        out[member] = [
            {"checkpoint": checkpoint, "member": member, "part": n, "parts": len(chunks), "entries": chunk}
            for n, chunk in enumerate(chunks, start=1)
        ]
    return out


@dataclass
class MemberChainReport:
    chain: int
    entries: int = 0
    proven: int = 0
    pending: int = 0
    """Entries after the last checkpoint of their chain: not yet covered."""
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _key(entry: dict[str, Any]) -> tuple[int, int]:
    return int(entry["chain"]), int(entry["seq"])


def verify_member(
    member: str,
    entries: Iterable[dict[str, Any]],
    proofs: Iterable[dict[str, Any]],
    checkpoints: Iterable[dict[str, Any]],
    keys: RouterKeys,
) -> dict[int, MemberChainReport]:
    """Check `member`'s audit entries (from its receipts) against proofs and public checkpoints."""
    reports: dict[int, MemberChainReport] = {}

    def report(chain: int) -> MemberChainReport:
        return reports.setdefault(chain, MemberChainReport(chain))

    known = _check_checkpoints(checkpoints, keys, report)
    last_covered = {chain: max(cp["covers"]["last_seq"] for cp in cps.values()) for chain, cps in known.items()}

    proven: dict[tuple[int, int], tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for value in proofs:
        try:
            checkpoint = value["checkpoint"]
            chain, seq = _key(checkpoint)
            items = list(value["entries"])
        except (KeyError, TypeError, ValueError) as exc:
            report(-1).problems.append(f"an audit-proof record is malformed ({type(exc).__name__})")
            continue
        if value.get("member") != member:
            report(chain).problems.append(f"an audit-proof record of checkpoint {seq} names {value.get('member')!r}")
            continue
        if known.get(chain, {}).get(seq, {}).get("hash") != checkpoint.get("hash"):
            report(chain).problems.append(
                f"proof against checkpoint {seq} of chain {chain}, which audit.checkpoints does not hold as such")
            continue
        for item in items:
            proven[(chain, int(item["seq"]))] = (str(item["hash"]), item, checkpoint)

    for entry in entries:
        try:
            chain, seq = _key(entry)
        except (KeyError, TypeError, ValueError):
            report(-1).problems.append("a receipt carries a malformed audit entry")
            continue
        r = report(chain)
        r.entries += 1
        where = f"entry {seq} of chain {chain}"
        if recomputed_hash(entry) != entry.get("hash"):
            r.problems.append(f"{where}: hash does not match its content")
            continue
        if entry.get("receipt_to") != member:
            r.problems.append(f"{where} is not about {member}'s records")
            continue
        found = proven.get((chain, seq))
        if found is None:
            if seq <= last_covered.get(chain, 0):
                r.problems.append(f"{where} is covered by a checkpoint but no proof for it was received")
            else:
                r.pending += 1
            continue
        leaf, item, checkpoint = found
        covers = checkpoint["covers"]
        index = seq - int(covers["first_seq"])
        ok = (leaf == entry["hash"] and int(item["index"]) == index and merkle.verify_inclusion(
            bytes.fromhex(leaf), index, int(covers["size"]), [bytes.fromhex(p) for p in item["path"]],
            bytes.fromhex(str(covers["merkle_root"]))))
        if ok:
            r.proven += 1
        else:
            r.problems.append(f"{where} is not in checkpoint {checkpoint['seq']}'s Merkle tree")
    return dict(sorted(reports.items()))


def _check_checkpoints(checkpoints: Iterable[dict[str, Any]], keys: RouterKeys,
                       report: Any) -> dict[int, dict[int, dict[str, Any]]]:
    """Valid checkpoints by chain and seq; signatures, hashes, forks and links checked."""
    by_chain: dict[int, dict[int, dict[str, Any]]] = {}
    for cp in checkpoints:
        try:
            chain, seq = _key(cp)
        except (KeyError, TypeError, ValueError):
            report(-1).problems.append("audit.checkpoints holds a malformed record")
            continue
        r = report(chain)
        if recomputed_hash(cp) != cp.get("hash"):
            r.problems.append(f"checkpoint {seq} of chain {chain}: hash does not match its content")
            continue
        try:
            verify_checkpoint_signature(cp, keys)
        except VerificationError as exc:
            r.problems.append(f"checkpoint {seq} of chain {chain}: {exc.detail}")
            continue
        held = by_chain.setdefault(chain, {})
        if seq in held:
            if held[seq]["hash"] != cp["hash"]:
                r.problems.append(f"chain {chain} forked: two different checkpoints at seq {seq}")
            continue
        held[seq] = cp
    for chain, held in by_chain.items():
        r = report(chain)
        r.checkpoints = len(held)
        previous: dict[str, Any] | None = None
        for seq in sorted(held):
            cp = held[seq]
            expected = {"seq": previous["seq"], "hash": previous["hash"]} if previous else None
            if cp.get("prev_checkpoint") != expected:
                r.problems.append(f"checkpoint {seq} of chain {chain} does not follow checkpoint "
                                  f"{expected['seq'] if expected else '(none)'}: the sequence is forked or cut")
            previous = cp
    return by_chain
