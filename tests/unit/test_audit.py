"""The audit chains and their signed checkpoints: every kind of tampering an auditor must catch."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.core.audit import (
    CHECKPOINT,
    ENTRY_LIMIT,
    GENESIS,
    AuditChain,
    CheckpointRef,
    SegmentEntry,
    canonical,
    canonical_text,
    compose,
    compose_sorted,
    entry_hash,
    fit,
    make_checkpoint,
    member_prefixes,
    recomputed_hash,
    verify_chains,
)
from bus.core.audit_proofs import proof_parts, verify_member
from bus.core.keys import SigningKey
from bus.core.trust import FederationDirectory, FederationRouter, MemberKey

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ROUTER = SigningKey.generate("EPA-ROUTER-1")
DIRECTORY = FederationDirectory(
    federation_id="EPA", name="test", version=1, issued_at=NOW,
    routers=(FederationRouter(id="EPA-ROUTER-1", name="r", keys=(
        MemberKey.for_public_key(ROUTER.public, NOW - timedelta(days=1), NOW + timedelta(days=30)),)),),
)


def build_chain(chain: int, plan: str, *, signer: SigningKey = ROUTER, router_id: str = "EPA-ROUTER-1",
                owners: str = "AB") -> list[dict[str, Any]]:
    """Entries of one chain: 'd' a decision, 'c' a checkpoint over the decisions since the last one."""
    head, segment, prev = AuditChain(chain), [], None
    out = []
    for n, step in enumerate(plan):
        if step == "d":
            owner = owners[n % len(owners)]
            entry, head = head.link({"kind": "decision", "message_id": f"m{n}", "receipt_to": owner})
            segment.append(SegmentEntry(entry["seq"], entry["hash"], owner))
        else:
            entry, head = make_checkpoint(head, segment, prev, router_id=router_id, signer=signer,
                                          signed_at=NOW + timedelta(seconds=n))
            prev, segment = CheckpointRef(entry["seq"], entry["hash"]), []
        out.append(entry)
    return out


def check(entries: list[dict[str, Any]], partition: int = 0):  # type: ignore[no-untyped-def]
    return verify_chains([(partition, i, canonical(e)) for i, e in enumerate(entries)], DIRECTORY)[partition]


def rehash_from(entries: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """Recompute every hash and prev_hash from `start` on: a rewrite with valid-looking hashes."""
    out = copy.deepcopy(entries)
    for i in range(start, len(out)):
        out[i]["prev_hash"] = out[i - 1]["hash"] if i else GENESIS
        out[i]["seq"] = i + 1
        out[i]["hash"] = recomputed_hash(out[i])
    return out


def test_the_hash_is_over_the_previous_hash_and_the_canonical_entry():
    entry, head = AuditChain(3).link({"kind": "decision", "message_id": "x"})
    body = {k: v for k, v in entry.items() if k != "hash"}
    assert entry["hash"] == entry_hash(GENESIS, body) == head.head
    assert (entry["chain"], entry["seq"], entry["prev_hash"]) == (3, 1, GENESIS)
    second, _ = head.link({"kind": "decision"})
    assert second["prev_hash"] == entry["hash"] and second["seq"] == 2


def test_a_body_that_does_not_follow_the_head_is_refused():
    head = AuditChain(0)
    with pytest.raises(ValueError):
        head.seal({"chain": 0, "seq": 2, "prev_hash": GENESIS})


def test_an_intact_chain_with_checkpoints_verifies_and_reports_what_is_uncovered():
    report = check(build_chain(0, "dddcddcdd"))
    assert report.ok and (report.entries, report.decisions, report.checkpoints) == (9, 7, 2)
    assert report.last_checkpoint == 7 and report.uncovered == 2


@pytest.mark.parametrize("tamper, expected", [
    (lambda es: es[:2] + es[3:], "entries missing"),  # an entry removed
    (lambda es: [es[0], es[2], es[1], *es[3:]], "sequence 3, expected 2"),  # two entries swapped
    (lambda es: [*es[:4], es[3], *es[4:]], "again"),  # a fork: the same seq twice
    (lambda es: [*es[:2], {**es[2], "recipients": ["X"]}, *es[3:]], "rewritten"),  # content changed, hash kept
])
def test_removed_reordered_forked_and_rewritten_entries_are_caught(tamper, expected):
    report = check(tamper(build_chain(0, "ddddcdd")))
    assert not report.ok and expected in (report.problem or "")


def test_a_rewrite_with_valid_looking_hashes_is_caught_by_the_checkpoint_that_covers_it():
    entries = build_chain(0, "ddddcdd")
    entries[1]["recipients"] = ["SOMEONE-ELSE"]
    report = check(rehash_from(entries, 1))
    assert not report.ok and "checkpoint" in (report.problem or "")


def test_a_removal_with_renumbered_and_rehashed_entries_is_caught_too():
    entries = build_chain(0, "ddddcdd")
    report = check(rehash_from(entries[:1] + entries[2:], 1))
    assert not report.ok and "checkpoint" in (report.problem or "")


def test_a_checkpoint_signed_by_a_key_the_directory_does_not_list_is_caught():
    report = check(build_chain(0, "ddcd", signer=SigningKey.generate("EPA-ROUTER-1")))
    assert not report.ok and "not a key of router EPA-ROUTER-1" in (report.problem or "")
    report = check(build_chain(0, "ddcd", router_id="EPA-ROUTER-9"))
    assert not report.ok and "EPA-ROUTER-9" in (report.problem or "")


def test_a_checkpoint_whose_signature_was_made_over_other_content_is_caught():
    entries = build_chain(0, "dddcd")
    cp = entries[3]
    cp["covers"] = {**cp["covers"], "size": 2}
    cp["hash"] = recomputed_hash(cp)
    entries[4]["prev_hash"] = cp["hash"]
    entries[4]["hash"] = recomputed_hash(entries[4])
    report = check(entries)
    assert not report.ok and "signature does not verify" in (report.problem or "")


def test_an_entry_on_another_chains_partition_is_caught():
    report = check(build_chain(1, "dd"), partition=0)
    assert not report.ok and "chain 1 found on partition 0" in (report.problem or "")


def test_chains_are_checked_apart():
    good, bad = build_chain(0, "ddcd"), build_chain(1, "ddcd")
    bad[1]["message_id"] = "changed"
    records = [(0, i, canonical(e)) for i, e in enumerate(good)] + [(1, i, canonical(e)) for i, e in enumerate(bad)]
    reports = verify_chains(records, DIRECTORY)
    assert reports[0].ok and not reports[1].ok


def test_junk_on_the_audit_topic_is_a_problem_not_a_crash():
    report = verify_chains([(0, 0, b"\xff not json"), (0, 1, None)], DIRECTORY)[0]
    assert not report.ok and "not an audit entry" in (report.problem or "")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="dc", min_size=1, max_size=40).filter(lambda p: p[0] == "d" and "cc" not in p),
       st.data())
def test_any_single_change_to_a_covered_entry_is_caught(plan, data):
    entries = build_chain(0, plan)
    assert check(entries).ok
    last_cp = max((i for i, e in enumerate(entries) if e["kind"] == CHECKPOINT), default=None)
    if last_cp is None:
        return
    target = data.draw(st.integers(0, last_cp))
    entries[target]["message_id"] = "tampered"
    repaired = rehash_from(entries, target) if data.draw(st.booleans()) else entries
    assert not check(repaired).ok


def test_a_huge_decision_map_is_summarised_to_fit():
    decisions = {f"PARTNER-{i:04d}": {"delivered": i % 3 == 0, "rule": f"rule-{i}", "reason": "default-deny"}
                 for i in range(400)}
    recipients = [f"PARTNER-{i:04d}" for i in range(0, 400, 3)]
    entry = fit({"kind": "decision", "decisions": decisions, "recipients": recipients})
    sealed, _ = AuditChain(0).link(entry)
    assert len(canonical(sealed)) <= ENTRY_LIMIT
    assert entry["decisions"] is None and entry["decisions_summary"]["partners"] == 400


# -- a member's view ------------------------------------------------------------------------------------


Entries = list[dict[str, Any]]


def member_view(entries: Entries, member: str) -> tuple[Entries, Entries, Entries]:
    mine = [e for e in entries if e.get("receipt_to") == member]
    proofs, checkpoints, segment = [], [], []
    for e in entries:
        if e["kind"] == CHECKPOINT:
            checkpoints.append(e)
            proofs += proof_parts(e, segment).get(member, [])
            segment = []
        else:
            segment.append(SegmentEntry(e["seq"], e["hash"], e.get("receipt_to")))
    return mine, proofs, checkpoints


def test_a_member_proves_its_entries_and_sees_the_rest_as_pending():
    entries = build_chain(0, "dddddcdddcdd", owners="AB")
    mine, proofs, checkpoints = member_view(entries, "A")
    report = verify_member("A", mine, proofs, checkpoints, DIRECTORY)[0]
    assert report.ok and report.proven == 5 and report.pending == 1


def test_a_member_catches_a_changed_entry_a_missing_proof_and_a_forked_checkpoint_sequence():
    entries = build_chain(0, "ddddcddc", owners="A")
    mine, proofs, checkpoints = member_view(entries, "A")
    changed = [{**mine[0], "outcome": "rejected"}, *mine[1:]]
    assert not verify_member("A", changed, proofs, checkpoints, DIRECTORY)[0].ok
    assert "no proof" in " ".join(verify_member("A", mine, proofs[1:], checkpoints, DIRECTORY)[0].problems)
    other = build_chain(0, "dddcdddc", owners="A")  # another history of the same chain
    forked = verify_member("A", mine, proofs, [*checkpoints, other[7]], DIRECTORY)[0]
    assert any("forked" in p for p in forked.problems)
    unsigned = [{**cp, "signature": json.dumps("x")} for cp in checkpoints]
    assert not verify_member("A", mine, proofs, unsigned, DIRECTORY)[0].ok


def test_proofs_are_split_into_records_of_bounded_size():
    entries = build_chain(0, "d" * 250 + "c", owners="A")
    parts = proof_parts(entries[-1], [SegmentEntry(e["seq"], e["hash"], "A") for e in entries[:-1]])["A"]
    assert [p["part"] for p in parts] == [1, 2, 3] and all(len(canonical(p)) < 100_000 for p in parts)


# -- encoding each member once gives the same bytes ------------------------------------------------

_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@given(st.dictionaries(st.text(), _JSON, max_size=8))
def test_composing_canonical_members_is_the_canonical_encoding(value: dict[str, Any]) -> None:
    assert compose({k: canonical_text(v) for k, v in value.items()}).encode() == canonical(value)


@settings(max_examples=80)
@given(st.dictionaries(st.text(max_size=12), _JSON, max_size=6), st.integers(0, 5), st.integers(0, 10**6),
       st.integers(0, 40), st.booleans())
def test_link_fitted_is_link_of_fit_and_its_canonical_bytes(extra: dict[str, Any], chain: int, seq: int,
                                                            partners: int, stale: bool) -> None:
    """The router writes what `link(fit(entry))` and `canonical` make: oversized entries, entries
    already holding sealing fields and keys on both sides of `hash` included."""
    head = AuditChain(chain, seq, "ab" * 32)
    entry = {**extra, "kind": "decision", "message_id": "m-1", "hashed": "x", "has": 1,
             "decisions": {f"PARTNER-{i:03d}": {"delivered": False, "reason": "no rule matched " + "x" * 80}
                           for i in range(partners)}}
    if stale:
        entry.update(hash="stale", seq=-1)
    else:
        entry = {k: v for k, v in entry.items() if k not in ("chain", "seq", "prev_hash", "hash")}
    expected, expected_head = head.link(fit(entry))
    sealed, new_head, text = head.link_fitted(entry)
    assert (sealed, new_head) == (expected, expected_head)
    assert text.encode() == canonical(expected)


@given(st.dictionaries(st.text(), _JSON, max_size=8))
def test_composing_members_in_fixed_key_order_is_the_canonical_encoding(value: dict[str, Any]) -> None:
    """How the router writes a receipt: the keys' prefixes made once, the members' texts in sorted key order."""
    prefixes = member_prefixes(sorted(value))
    texts = [canonical_text(value[k]) for k in sorted(value)]
    assert compose_sorted(prefixes, texts).encode() == canonical(value)


@given(st.lists(st.text(), max_size=5) | st.dictionaries(st.text(), st.none() | st.integers() | st.text(), max_size=5))
def test_flat_lists_and_objects_are_written_as_the_encoder_writes_them(value: list[str] | dict[str, Any]) -> None:
    assert canonical_text(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_member_prefixes_refuse_keys_out_of_order() -> None:
    """The texts are written in the order the prefixes were made in: an unsorted key list would
    put members out of canonical order, so it is refused where it is declared."""
    assert member_prefixes(["a", "b"]) == ('"a":', '"b":')
    with pytest.raises(ValueError, match="sorted"):
        member_prefixes(["b", "a"])
