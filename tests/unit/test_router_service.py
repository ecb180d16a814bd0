"""The router on the in-memory engine: batches, aborts, unknown outcomes, rebalances, restore.

Each test drives one or more `Router`s turn by turn (`turn()` is one poll, rebalance
and transaction) against a `MemoryEngine`, and checks what a partner, a producer and
an auditor would see: feeds, receipts, dead letters, the audit chains.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import Capabilities, Record
from bus.adapters.kafka.memory import MemoryEngine
from bus.core.audit import canonical, verify_chains
from bus.core.audit_proofs import verify_member
from bus.core.placement import partition_for
from bus.core.policy import Policy, parse_policy
from bus.core.receipts import PROOF_TYPE, RECEIPT_TYPE, AckStatus, claimed_type, sign_ack, verify_router_record
from bus.core.topology import ACKS_TOPIC, AUDIT_CHECKPOINTS_TOPIC, AUDIT_TOPIC, CHANGELOG_TOPIC, DLQ_TOPIC
from bus.core.trust import FederationDirectory, revoke_key
from bus.errors import AlreadyRunning, ConfigError, Fenced, KafkaOperationFailed, RecordTooLarge, TopologyMismatch
from bus.services.router import Router, RouterIdentity, RouterOptions
from tests.helpers import example
from tests.router_support import NEUTRAL, ce_id, decisions, header, policy_doc, sealed, wire

POLICY = parse_policy(policy_doc())
ES = {**NEUTRAL, "countries": ["ES"]}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return make_demo(tmp_path_factory.mktemp("fed"))


@dataclass
class World:
    engine: MemoryEngine
    fed: DemoFederation
    state: Path
    directory: FederationDirectory
    policy: Policy = POLICY

    def router(self, *, instance: str | None = None, state: Path | None = None, **options: Any) -> Router:
        opts = RouterOptions(state_dir=state or self.state, instance=instance, poll_timeout=0.05,
                             **{"checkpoint_interval": 3600.0, **options})
        assert self.fed.router_signer is not None
        return Router(self.engine, lambda: (self.policy, self.directory),
                      RouterIdentity(self.fed.router_id, self.fed.router_signer), opts)

    def publish(self, *alerts: Any, producer: str = "EUROPOL") -> list[str]:
        out = self.engine.producer()
        ids = []
        for alert in alerts:
            topic, key, value, headers = wire(sealed(alert, self.fed.signers[producer]))
            out.send(topic, value, key=key, headers=headers)
            ids.append(str(alert.header.message_id))
        return ids

    def alerts(self, n: int, producer: str = "EUROPOL", **header: Any) -> list[str]:
        return self.publish(*[example("corruption-indicator", producer=producer, **{**ES, **header})
                              for _ in range(n)], producer=producer)

    def records(self, topic: str) -> list[Record]:
        return self.engine.records(topic)

    def feed(self, partner: str) -> list[str]:
        return [i for r in self.records(f"feed.{partner.lower()}") if (i := ce_id(r))]

    def audit_ok(self) -> dict[int, Any]:
        reports = verify_chains(((r.partition, r.offset, r.value) for r in self.records(AUDIT_TOPIC)), self.directory)
        assert all(r.ok for r in reports.values()), {c: r.problem for c, r in reports.items() if not r.ok}
        return reports

    def receipts(self, member: str) -> list[dict[str, Any]]:
        out = []
        for r in self.records(f"receipts.{member.lower()}"):
            headers = [(k.decode(), v) for k, v in r.headers]
            if claimed_type(headers) == RECEIPT_TYPE:
                out.append(verify_router_record(r.key, r.value, headers, self.directory).value)
        return out

    def dead_letters(self) -> list[Record]:
        return self.records(DLQ_TOPIC)


@pytest.fixture
def world(fed: DemoFederation, tmp_path: Path) -> World:
    return World(MemoryEngine(), fed, tmp_path / "state", fed.directory)


def run_until_idle(*routers: Router, turns: int = 200) -> None:
    """Turn every router until none has anything left to do (twice in a row)."""
    quiet = 0
    for _ in range(turns):
        worked = [r.turn() for r in routers]
        quiet = 0 if any(worked) else quiet + 1
        if quiet >= 3 and all(r.tasks or not r._consumer.assignment() for r in routers):  # type: ignore[union-attr]
            return
    raise AssertionError("routers did not settle")


@pytest.fixture
def router(world: World) -> Iterator[Router]:
    r = world.router()
    r.start()
    yield r
    r.close()


# -- one router, one batch -----------------------------------------------------------------------


def test_a_batch_goes_to_the_feeds_the_policy_names_exactly_once_with_its_audit_and_receipts(world, router):
    ids = world.alerts(20)
    run_until_idle(router)
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids)
    assert world.feed("EUROPOL") == []
    entries = decisions(world.records(AUDIT_TOPIC))
    assert sorted(e["message_id"] for e in entries) == sorted(ids)
    assert {e["outcome"] for e in entries} == {"routed"}
    receipts = world.receipts("EUROPOL")
    assert sorted(r["message_id"] for r in receipts) == sorted(ids)
    assert all(r["recipients"] == ["ES-CUSTOMS"] and r["recipient_count"] == 1 for r in receipts)
    assert len(world.records(CHANGELOG_TOPIC)) == 20
    world.audit_ok()
    assert router.stats.routed == 20 and router.stats.delivered == 20


def test_audit_entries_and_receipts_are_written_in_canonical_json_with_the_entry_embedded_verbatim(world, router):
    """Auditors re-hash the bytes: each audit record and receipt is exactly the canonical JSON of
    what it holds, and a receipt carries the very entry the chain holds, routed or rejected."""
    world.alerts(5)
    topic, key, value, headers = wire(sealed(example("corruption-indicator", producer="EUROPOL", **ES),
                                             world.fed.signers["EUROPOL"]))
    for _ in range(2):  # the second copy is a replay: rejected after the signature, so with a receipt
        world.engine.producer().send(topic, value, key=key, headers=headers)
    run_until_idle(router)
    audit = {(e := json.loads(r.value))["seq"] + 1000 * e["chain"]: r.value for r in world.records(AUDIT_TOPIC)}
    assert all(canonical(json.loads(raw)) == raw for raw in audit.values())
    receipts = [r for r in world.records("receipts.europol") if header(r, b"ce_type") == RECEIPT_TYPE]
    assert len(receipts) == 7
    for r in receipts:
        assert r.value is not None and canonical(json.loads(r.value)) == r.value
        entry = json.loads(r.value)["audit"]["entry"]
        assert canonical(entry) == audit[entry["seq"] + 1000 * entry["chain"]]
    assert {json.loads(r.value)["outcome"] for r in receipts} == {"routed", "rejected"}


def test_each_copy_names_the_rule_that_delivered_it_and_a_forged_rule_header_is_replaced(world, router):
    alert = example("corruption-indicator", producer="EUROPOL", **{**ES, "tlp": "GREEN"})
    topic, key, value, headers = wire(sealed(alert, world.fed.signers["EUROPOL"]))
    world.engine.producer().send(topic, value, key=key, headers=(*headers, (b"bus_route_rule", b"forged")))
    run_until_idle(router)
    [es] = world.records("feed.es-customs")
    [police] = world.records("feed.nl-police")
    assert es.header_values(b"bus_route_rule") == [b"r-country"]
    assert police.header_values(b"bus_route_rule") == [b"r-tlp"]
    assert es.value == value and es.key == key
    assert [h for h in es.headers if h[0] != b"bus_route_rule"] == list(headers)


def test_records_that_fail_verification_are_dead_lettered_with_the_routers_reason_only(world, router):
    alert = example("corruption-indicator", producer="EUROPOL", **ES)
    topic, key, value, headers = wire(sealed(alert, world.fed.signers["EUROPOL"]))
    forged = (*headers, (b"bus_reject_reason", b"none"), (b"bus_source_offset", b"9"), (b"x-null", None))
    tampered = value[:-3] + bytes([value[-3] ^ 0x40]) + value[-2:]
    world.engine.produce_raw(topic, partition_for(key, 6), tampered, key=key, headers=forged)
    run_until_idle(router)
    [dead] = world.dead_letters()
    assert dead.value == tampered and dead.key == key
    assert dead.header_values(b"bus_reject_reason") == [b"bad-signature"]
    assert dead.header_values(b"bus_source_offset") == [b"0"]
    assert dead.header_values(b"x-null") == [None]  # nulls stay null
    kept = [h for h in dead.headers if not h[0].startswith((b"bus_reject_", b"bus_source_"))]
    assert kept == [h for h in forged if not h[0].startswith((b"bus_reject_", b"bus_source_"))]
    assert world.receipts("EUROPOL") == []  # a bad signature proves nothing about who sent it


def test_a_verdict_after_the_signature_goes_to_the_producer_and_nobody_else(world):
    revoked_at = datetime.now(UTC) - timedelta(minutes=30)
    signer = world.fed.signers["EUROPOL"]
    world.directory = revoke_key(world.fed.directory, "EUROPOL", signer.key_id, at=revoked_at, reason="test")
    router = world.router()
    router.start()
    [mid] = world.alerts(1)
    run_until_idle(router)
    router.close()
    [receipt] = world.receipts("EUROPOL")
    assert receipt["message_id"] == mid and receipt["outcome"] == "rejected"
    assert receipt["reason"] == "key-revoked" and "revoked" in receipt["detail"]
    assert receipt["audit"]["entry"]["receipt_to"] == "EUROPOL"
    assert header(world.dead_letters()[0], b"bus_reject_reason") == "key-revoked"


def test_undecodable_and_oversized_records_get_a_bounded_dead_letter_and_an_audit_entry(world, router):
    world.engine.create_topic("alerts.corruption-indicator", 6)
    bad = world.engine.faults.inject_undecodable("alerts.corruption-indicator", 2)
    huge = world.engine.produce_raw("alerts.corruption-indicator", 1, b"x" * 300_000, key=b"k",
                                    headers=((b"ce_id", b"y" * 100_000),))
    run_until_idle(router)
    forms = {json.loads(r.value)["reason"]: json.loads(r.value) for r in world.dead_letters()}
    assert forms["undecodable"]["source"] == {"topic": "alerts.corruption-indicator", "partition": 2, "offset": bad}
    assert forms["oversized"]["source"]["offset"] == huge.offset
    assert forms["oversized"]["value"]["len"] == 300_000 and len(forms["oversized"]["value"]["sha256"]) == 64
    entries = decisions(world.records(AUDIT_TOPIC))
    assert {e["reason"] for e in entries} == {"undecodable", "oversized"}
    assert max(len(r.value) for r in world.records(AUDIT_TOPIC)) < 4096
    oversized = next(e for e in entries if e["reason"] == "oversized")
    assert oversized["message_id"] == {"len": 100_000, "sha256": oversized["message_id"]["sha256"]}
    world.audit_ok()


def test_a_record_the_engine_cannot_send_goes_to_the_bounded_form_without_bisecting(fed, tmp_path):
    """kafka-python cannot send a null header value or a record with neither key nor value."""
    engine = MemoryEngine(capabilities=Capabilities(null_header_values=False, keyless_valueless_records=False))
    world = World(engine, fed, tmp_path / "state", fed.directory)
    r = world.router()
    r.start()
    try:
        engine.create_topic("alerts.corruption-indicator", 6)
        engine.produce_raw("alerts.corruption-indicator", 0, b"v", key=b"k", headers=((b"n", None),))
        engine.produce_raw("alerts.corruption-indicator", 0, None)
        ids = world.alerts(3)
        run_until_idle(r)
        forms = [json.loads(d.value) for d in world.dead_letters()]
        assert len(forms) == 2 and all(f["form"] == "bounded" for f in forms)
        assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids)
        assert r.stats.bisections == 0
    finally:
        r.close()


# -- placement and replay ------------------------------------------------------------------------------


def test_replays_to_every_partition_and_another_topic_are_refused_and_the_original_routed_once(world, router):
    alert = example("corruption-indicator", producer="EUROPOL", **ES)
    topic, key, value, headers = wire(sealed(alert, world.fed.signers["EUROPOL"]))
    world.engine.create_topic(topic, 6)
    world.engine.create_topic("alerts.operation-notice", 6)
    for p in range(6):
        world.engine.produce_raw(topic, p, value, key=key, headers=headers)
    world.engine.produce_raw("alerts.operation-notice", partition_for(key, 6), value, key=key, headers=headers)
    world.engine.produce_raw(topic, partition_for(key, 6), value, key=key, headers=headers)
    run_until_idle(router)
    assert world.feed("ES-CUSTOMS") == [str(alert.header.message_id)]
    reasons = sorted(header(d, b"bus_reject_reason") or "" for d in world.dead_letters())
    assert reasons == ["misplaced"] * 6 + ["replay"]


def test_replay_is_caught_after_a_restart_from_the_local_store_and_from_the_changelog_alone(world):
    alert = example("corruption-indicator", producer="EUROPOL", **ES)
    first = world.router()
    first.start()
    world.publish(alert)
    run_until_idle(first)
    first.close()
    world.publish(alert)  # the same signed alert again, after the restart
    second = world.router()  # same state dir, same slot: its store is current
    second.start()
    run_until_idle(second)
    second.close()
    world.publish(alert)
    fresh = world.router(state=world.state.parent / "other-host")  # no local state: the changelog restores it
    fresh.start()
    run_until_idle(fresh)
    fresh.close()
    assert world.feed("ES-CUSTOMS") == [str(alert.header.message_id)]
    assert [header(d, b"bus_reject_reason") for d in world.dead_letters()] == ["replay", "replay"]
    assert second.stats.restores == 1 and fresh.stats.routed == 0
    world.audit_ok()


# -- audit chains and checkpoints ---------------------------------------------------------------------


def test_chains_continue_across_owners_and_checkpoints_cover_them(world):
    first = world.router(checkpoint_every=4)
    first.start()
    world.alerts(10)
    run_until_idle(first)
    first.close()  # a clean stop checkpoints what is left
    second = world.router(state=world.state.parent / "b", checkpoint_every=4)
    second.start()
    world.alerts(10)
    run_until_idle(second)
    second.checkpoint_all()
    second.close()
    reports = world.audit_ok()
    assert sum(r.decisions for r in reports.values()) == 20
    assert all(r.uncovered == 0 and r.checkpoints >= 1 for r in reports.values())
    published = [json.loads(r.value) for r in world.records(AUDIT_CHECKPOINTS_TOPIC)]
    assert sum(r.checkpoints for r in reports.values()) == len(published)


def test_a_member_verifies_its_own_entries_from_its_receipts_and_the_public_checkpoints(world, router):
    world.alerts(7)
    world.alerts(5, producer="NL-POLICE")
    run_until_idle(router)
    router.checkpoint_all()
    entries, proofs = [], []
    for r in world.records("receipts.europol"):
        headers = [(k.decode(), v) for k, v in r.headers]
        verified = verify_router_record(r.key, r.value, headers, world.directory)
        if verified.ce_type == RECEIPT_TYPE:
            entries.append(verified.value["audit"]["entry"])
        elif verified.ce_type == PROOF_TYPE:
            proofs.append(verified.value)
    checkpoints = [json.loads(r.value) for r in world.records(AUDIT_CHECKPOINTS_TOPIC)]
    reports = verify_member("EUROPOL", entries, proofs, checkpoints, world.directory)
    assert sum(r.proven for r in reports.values()) == 7
    assert all(r.ok for r in reports.values())
    entries[0] = {**entries[0], "recipients": ["SOMEONE"]}
    tampered = verify_member("EUROPOL", entries, proofs, checkpoints, world.directory)
    assert not all(r.ok for r in tampered.values())


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "request-lost"])
def test_a_commit_with_an_unknown_outcome_is_settled_from_what_kafka_committed(world, router, applied):
    ids = world.alerts(30)
    world.engine.faults.next_commit_unknown(applied=applied)
    run_until_idle(router)
    assert router.stats.recoveries == 1
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids)
    assert sorted(e["message_id"] for e in decisions(world.records(AUDIT_TOPIC))) == sorted(ids)
    world.audit_ok()


def test_an_outage_is_waited_out_and_nothing_is_lost_or_doubled(fed, tmp_path):
    engine = MemoryEngine(max_wait=0.3)
    world = World(engine, fed, tmp_path / "state", fed.directory)
    r = world.router(commit_timeout=0.5)
    r.start()
    try:
        ids = world.alerts(10)
        run_until_idle(r)
        with engine.faults.outage():
            more = world.alerts(10)
            for _ in range(3):
                r.turn()
        run_until_idle(r)
        assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids + more)
        world.audit_ok()
    finally:
        r.close()


def test_a_record_the_broker_refuses_is_isolated_by_bisection_and_the_rest_routed(world, router):
    ids = world.alerts(16)
    poison = ids[11]
    world.engine.faults.fail_sends("feed.es-customs", RecordTooLarge, when=lambda r: ce_id(r) == poison, times=20)
    run_until_idle(router)
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(set(ids) - {poison})
    [dead] = world.dead_letters()
    form = json.loads(dead.value)
    assert form["reason"] == "oversized" and "transaction failed" in form["why"]
    assert router.stats.bisections >= 4
    assert len(decisions(world.records(AUDIT_TOPIC))) == 16
    world.audit_ok()


def test_an_unexpected_broker_refusal_becomes_internal_error(world, router):
    ids = world.alerts(4)
    world.engine.faults.fail_sends("feed.es-customs", KafkaOperationFailed, when=lambda r: ce_id(r) == ids[0], times=9)
    run_until_idle(router)
    assert json.loads(world.dead_letters()[0].value)["reason"] == "internal-error"
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids[1:])


def test_a_second_process_with_the_same_instance_name_is_refused(world):
    first = world.router(instance="r1")
    first.start()
    try:
        with pytest.raises(AlreadyRunning, match="router instance r1 is already running"):
            world.router(instance="r1").start()
    finally:
        first.close()


def test_without_a_name_processes_take_distinct_slots_and_a_restart_takes_its_slot_back(world):
    a, b = world.router(), world.router()
    a.start()
    b.start()
    try:
        assert a.instance != b.instance and a.instance.endswith("-1") and b.instance.endswith("-2")
        a.close()
        c = world.router()
        c.start()
        assert c.instance == a.instance
        c.close()
    finally:
        b.close()


def test_a_router_whose_identity_was_taken_over_exits(world):
    first = world.router(instance="same")
    first.start()
    world.alerts(2)
    run_until_idle(first)
    usurper = world.router(instance="same", state=world.state.parent / "elsewhere")
    usurper.start()
    world.alerts(2)
    with pytest.raises(Fenced):
        for _ in range(20):
            first.turn()
    first.close()
    usurper.close()


def test_co_partitioned_topics_with_other_partition_counts_stop_the_router(world):
    world.engine.create_topic("alerts.corruption-indicator", 3)
    r = world.router()
    r.start()
    try:
        with pytest.raises(TopologyMismatch, match=r"alerts\.corruption-indicator has 3"):
            for _ in range(10):
                r.turn()
    finally:
        r.close()


def test_a_replay_window_shorter_than_max_age_plus_skew_is_refused():
    with pytest.raises(ConfigError, match="replay_window"):
        RouterOptions(replay_window=timedelta(days=1))


# -- many routers ---------------------------------------------------------------------------------------


def test_two_routers_share_the_tasks_and_a_rebalance_loses_and_doubles_nothing(world):
    a = world.router(session_timeout_ms=6000)
    a.start()
    ids = world.alerts(40)
    for _ in range(3):
        a.turn()
    b = world.router(session_timeout_ms=6000)
    b.start()
    more = world.alerts(40)
    run_until_idle(a, b)
    assert set(a.tasks).isdisjoint(b.tasks) and len(a.tasks) + len(b.tasks) == 6
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids + more)
    assert len(decisions(world.records(AUDIT_TOPIC))) == 80
    a.close()
    b.close()
    world.audit_ok()


def test_a_router_whose_session_expired_drops_its_tasks_and_the_other_takes_them(world):
    a, b = world.router(), world.router()
    a.start()
    b.start()
    run_until_idle(a, b)
    world.engine.faults.expire_member(a._consumer)  # type: ignore[arg-type]
    ids = world.alerts(30)
    run_until_idle(a, b)
    assert sorted(world.feed("ES-CUSTOMS")) == sorted(ids)
    a.close()
    b.close()
    world.audit_ok()


# -- acknowledgements ---------------------------------------------------------------------------------


def _ack(world: World, member: str, message_id: str, key: bytes, *, signer_of: str | None = None,
         partition: int | None = None) -> None:
    signer = world.fed.signers[signer_of or member]
    value, headers = sign_ack(signer, key, message_id, AckStatus.USEFUL, "thanks", datetime.now(UTC))
    headers = [(k, v.replace(signer.member.encode(), member.encode()) if k == "ce_source" else v) for k, v in headers]
    world.engine.create_topic(ACKS_TOPIC, 6)
    world.engine.produce_raw(ACKS_TOPIC, partition_for(key, 6) if partition is None else partition, value, key=key,
                             headers=tuple((k.encode(), v) for k, v in headers))


def test_an_acknowledgement_reaches_the_originator_only_from_a_member_that_received_the_alert(world, router):
    alert = example("corruption-indicator", producer="EUROPOL", **ES)
    [mid] = world.publish(alert)
    run_until_idle(router)
    key = world.records("feed.es-customs")[0].key
    assert key is not None
    _ack(world, "ES-CUSTOMS", mid, key)  # received it: forwarded
    _ack(world, "BE-CUSTOMS", mid, key)  # never received it: not-received
    _ack(world, "NL-POLICE", mid, key, signer_of="ES-CUSTOMS")  # signed with another member's key: forged
    run_until_idle(router)
    forwarded = [r for r in world.records("receipts.europol")
                 if claimed_type([(k.decode(), v) for k, v in r.headers]) == "eu.epa.ack.v1"]
    assert len(forwarded) == 1 and json.loads(forwarded[0].value)["status"] == "useful"
    reasons = sorted(header(d, b"bus_reject_reason") or "" for d in world.dead_letters())
    assert reasons == ["key-not-owned-by-producer", "not-received"]
    [be] = world.receipts("BE-CUSTOMS")
    assert be["reason"] == "not-received" and be["record"] == "ack"
    assert world.receipts("NL-POLICE") == []  # a forgery proves nothing about NL-POLICE
    assert [r["outcome"] for r in world.receipts("ES-CUSTOMS")] == ["routed"]


# -- encrypted alerts ----------------------------------------------------------------------------------


def test_an_encrypted_alert_goes_only_to_partners_the_policy_allows_that_hold_a_key(world, router):
    from bus.core.confidential import seal_encrypted
    from tests.helpers import SCHEMAS

    alert = example("corruption-indicator", producer="EUROPOL",
                    **{**ES, "tlp": "RED", "ports": ["DEHAM"], "release_to": ["ES-CUSTOMS", "NL-POLICE"]})
    record = seal_encrypted(alert, world.fed.signers["EUROPOL"], world.directory, SCHEMAS)
    topic, key, value, headers = wire(record)
    world.engine.producer().send(topic, value, key=key, headers=headers)
    run_until_idle(router)
    mid = str(alert.header.message_id)
    assert world.feed("ES-CUSTOMS") == [mid]  # policy allows, holds a key
    assert world.feed("DE-CUSTOMS") == []  # port rule, but not named: TLP:RED restriction
    assert world.feed("NL-POLICE") == []  # holds a key, but no rule delivers to it
    [entry] = decisions(world.records(AUDIT_TOPIC))
    assert entry["encrypted"] is True and entry["recipients"] == ["ES-CUSTOMS"]


# -- state ---------------------------------------------------------------------------------------------


def test_the_replay_window_is_evicted_while_running(fed, tmp_path):
    now = [datetime.now(UTC)]
    engine = MemoryEngine()
    world = World(engine, fed, tmp_path / "state", fed.directory)
    r = world.router(eviction_interval=0.01)
    r.clock = lambda: now[0]
    r.start()
    try:
        world.alerts(5)
        run_until_idle(r)
        assert sum(t.store.count() for t in r.tasks.values()) == 5
        now[0] += timedelta(days=9)
        r.turn()
        assert sum(t.store.count() for t in r.tasks.values()) == 0
    finally:
        r.close()


def test_health_and_metrics(world):
    import urllib.request

    r = world.router(health_port=0)
    r.start()
    try:
        world.alerts(3)
        run_until_idle(r)
        host, port = r.health_address  # type: ignore[misc]
        with urllib.request.urlopen(f"http://{host}:{port}/readyz") as response:
            assert json.loads(response.read())["status"] == "ok"
        with urllib.request.urlopen(f"http://{host}:{port}/metrics") as response:
            text = response.read().decode()
        assert "bus_router_routed_total 3.0" in text
        assert 'bus_router_delivered_total{feed="feed.es-customs"} 3.0' in text
        assert "bus_router_tasks 6.0" in text
    finally:
        r.close()


def test_restore_reads_only_what_changed_since_this_instance_last_held_a_task(world):
    first = world.router()
    first.start()
    world.alerts(30)
    run_until_idle(first)
    first.close()
    second = world.router()
    second.start()
    run_until_idle(second)
    offsets = {p: t.store.changelog_offset for p, t in second.tasks.items()}
    ends = {p: len(world.engine.records(CHANGELOG_TOPIC, partition=p)) for p in range(6)}
    assert all(offsets[p] >= ends[p] for p in range(6))
    second.close()


def test_a_member_without_a_receipts_topic_costs_its_receipts_but_never_wedges_routing(fed, tmp_path):
    """On a secured cluster the router may not create topics: a member that was added to the
    directory but not provisioned yet has no receipts topic. Its alerts are still routed."""
    from bus.core.models import AlertType
    from bus.core.topology import Replication, core_topics

    engine = MemoryEngine()
    for spec in core_topics([t.value for t in AlertType], Replication.for_cluster(1)):
        engine.create_topic(spec.name, spec.partitions)
    engine.create_topic(AUDIT_CHECKPOINTS_TOPIC, 1)
    for partner in POLICY.partners:
        engine.create_topic(partner.feed, 6)
    for member in fed.directory.members:
        if member.id != "EUROPOL":
            engine.create_topic(f"receipts.{member.id.lower()}", 1)
    world = World(engine, fed, tmp_path / "state", fed.directory)
    r = world.router(create_topics=False, checkpoint_every=2)
    r.start()
    try:
        [mid] = world.alerts(1)
        run_until_idle(r)
        assert world.feed("ES-CUSTOMS") == [mid] and r.stats.recoveries == 0
        key = world.records("feed.es-customs")[0].key
        assert key is not None
        _ack(world, "ES-CUSTOMS", mid, key)
        run_until_idle(r)
        [receipt] = world.receipts("ES-CUSTOMS")
        assert receipt["reason"] == "internal-error" and "receipts.europol" in receipt["detail"]
        assert r.stats.recoveries == 0
    finally:
        r.close()


def test_a_router_stops_when_a_topic_it_writes_does_not_exist(fed, tmp_path):
    engine = MemoryEngine()
    world = World(engine, fed, tmp_path / "state", fed.directory)
    from bus.core.models import AlertType
    from bus.core.topology import Replication, core_topics

    for spec in core_topics([t.value for t in AlertType], Replication.for_cluster(1)):
        if spec.name != DLQ_TOPIC:
            engine.create_topic(spec.name, spec.partitions)
    r = world.router(create_topics=False)
    r.start()
    try:
        with pytest.raises(TopologyMismatch, match=r"dlq\.rejected"):
            for _ in range(10):
                r.turn()
    finally:
        r.close()


def test_the_lag_of_every_partition_routed_from_is_reported_once_its_round_is_done(world, router):
    world.alerts(12)
    run_until_idle(router)
    for _ in range(len(router._consumer.assignment())):  # type: ignore[union-attr]
        router.turn()  # one partition's watermark a turn: a round takes as many turns as partitions
    text = router.metrics.render().decode()
    reported = {line for line in text.splitlines() if line.startswith("bus_router_consumer_lag{")}
    routed_from = {tp for tp in router._positions}
    assert len(reported) == len(routed_from) > 0
    assert all(line.endswith(" 0.0") for line in reported)
