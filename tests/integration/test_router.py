"""The policy router against a real broker: feeds, dead letters, audit chain, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters import transactions
from bus.adapters.federation_file import make_demo
from bus.adapters.policy_file import load_policy
from bus.core.envelope import build_headers
from bus.core.sealing import SealedRecord, seal
from bus.core.signing import sign_record
from bus.services.publisher import Publisher
from bus.services.router import Router, RouterOptions
from bus.services.router_sources import FileSources
from tests.helpers import REPO, SCHEMAS, assert_delivered_once, example, read_all, run_bus

NEUTRAL = {
    "tlp": "AMBER", "handling_codes": [], "source_reliability": "C", "information_assessment": "3",
    "empact_priority": None, "countries": [], "ports": [], "release_to": [], "h3_conditions": None,
}


def policy_doc(suffix: str) -> dict:
    def partner(pid: str, kind: str) -> dict:
        return {"id": pid, "kind": kind, "feed": f"feed.t{suffix}.{pid.lower()}"}

    return {
        "version": f"test-{suffix}",
        "partners": [
            partner("EUROPOL", "eu-agency"), partner("NL-CUSTOMS", "customs"), partner("BE-CUSTOMS", "customs"),
            partner("DE-CUSTOMS", "customs"), partner("ES-CUSTOMS", "customs"), partner("NL-POLICE", "police"),
            partner("BE-FEDPOL", "police"), partner("EMPACT-CCH", "empact"), partner("PORT-HAMBURG", "port-authority"),
        ],
        "rules": [
            {"id": "r-type", "match": {"alert_types": ["operation-notice"]}, "deliver_to": ["NL-CUSTOMS"]},
            {"id": "r-tlp", "match": {"tlp": ["GREEN"]}, "deliver_to": ["NL-POLICE"]},
            {"id": "r-handling", "match": {"handling_codes_any": ["H1"]}, "deliver_to": ["BE-CUSTOMS"]},
            {"id": "r-empact", "match": {"empact": [{"cycle": "2026-2029", "code": "CCH"}]},
             "deliver_to": ["EMPACT-CCH"]},
            {"id": "r-country", "match": {"countries_any": ["ES"]}, "deliver_to": ["ES-CUSTOMS"]},
            {"id": "r-port", "match": {"ports_any": ["DEHAM"]}, "deliver_to": ["DE-CUSTOMS"]},
            {"id": "r-producer", "match": {"producers": ["PORT-ROTTERDAM"]}, "deliver_to": ["PORT-HAMBURG"]},
            {"id": "r-reliability", "match": {"min_source_reliability": "B", "min_information_assessment": "2"},
             "deliver_to": ["BE-FEDPOL"]},
        ],
    }


# (label, example, producer, header overrides, expected recipients)
CASES = [
    ("default deny", "corruption-indicator", "EUROPOL", {}, set()),
    ("alert type", "operation-notice", "EUROPOL", {}, {"NL-CUSTOMS"}),
    ("tlp", "corruption-indicator", "EUROPOL", {"tlp": "GREEN"}, {"NL-POLICE"}),
    ("handling code", "corruption-indicator", "EUROPOL", {"handling_codes": ["H1"]}, {"BE-CUSTOMS"}),
    ("empact", "corruption-indicator", "EUROPOL", {"empact_priority": {"cycle": "2026-2029", "code": "CCH"}},
     {"EMPACT-CCH"}),
    ("country", "corruption-indicator", "EUROPOL", {"countries": ["ES"]}, {"ES-CUSTOMS"}),
    ("port", "corruption-indicator", "EUROPOL", {"ports": ["DEHAM"]}, {"DE-CUSTOMS"}),
    ("producer", "corruption-indicator", "PORT-ROTTERDAM", {}, {"PORT-HAMBURG"}),
    ("reliability met", "corruption-indicator", "EUROPOL",
     {"source_reliability": "A", "information_assessment": "1"}, {"BE-FEDPOL"}),
    ("reliability not met", "corruption-indicator", "EUROPOL",
     {"source_reliability": "A", "information_assessment": "3"}, set()),
    ("originator restriction", "corruption-indicator", "EUROPOL",
     {"countries": ["ES"], "ports": ["DEHAM"], "release_to": ["DE-CUSTOMS"]}, {"DE-CUSTOMS"}),
    ("TLP:RED, nobody named", "corruption-indicator", "EUROPOL",
     {"tlp": "RED", "countries": ["ES"], "ports": ["DEHAM"]}, set()),
    ("TLP:RED, named", "corruption-indicator", "EUROPOL",
     {"tlp": "RED", "countries": ["ES"], "ports": ["DEHAM"], "release_to": ["ES-CUSTOMS"]}, {"ES-CUSTOMS"}),
    ("H2, nobody named", "corruption-indicator", "EUROPOL", {"handling_codes": ["H2"], "countries": ["ES"]}, set()),
    ("H2, named", "corruption-indicator", "EUROPOL",
     {"handling_codes": ["H2"], "countries": ["ES"], "ports": ["DEHAM"], "release_to": ["ES-CUSTOMS"]},
     {"ES-CUSTOMS"}),
    ("producer never gets its own", "corruption-indicator", "ES-CUSTOMS", {"countries": ["ES"]}, set()),
]


@pytest.fixture(scope="module")
def world(kafka, tmp_path_factory):
    """A demo federation, a per-module test policy with its own feed topics."""
    base = tmp_path_factory.mktemp("router")
    fed = make_demo(base / "federation")
    suffix = os.urandom(3).hex()
    policy_path = base / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy_doc(suffix)))
    return {"base": base, "fed": fed, "policy": policy_path, "suffix": suffix}


def make_router(kafka, world, name: str, **options) -> Router:
    fed = world["fed"]
    sources = FileSources(world["policy"], federation=fed.directory_path, authority_pub=fed.authority_pub,
                          state_dir=world["base"] / f"state-{name}")
    return Router(kafka, sources.load, changed=sources.changed,
                  options=RouterOptions(group_id=f"router-{name}", transactional_id=f"tx-{name}", **options))


def publish_raw(kafka, records: list[SealedRecord]) -> None:
    producer = kafka_adapter.producer(kafka)
    for r in records:
        producer.send(r.topic, key=r.key, value=r.value, headers=r.headers)
    producer.flush()
    producer.close()


def feed_ids(kafka, topic: str) -> list[str]:
    return [dict(m.headers)[b"ce_id"].decode() for m in read_all(kafka, topic)]


def audit_by_id(kafka) -> dict[str, list[dict]]:
    entries: dict[str, list[dict]] = {}
    for m in read_all(kafka, "audit"):
        e = json.loads(m.value)
        entries.setdefault(e.get("message_id") or "", []).append(e)
    return entries


@pytest.fixture(scope="module")
def routed(kafka, world):
    """Publish every case plus hostile records, run the router once until idle."""
    fed = world["fed"]
    alerts = {}
    for label, name, producer, overrides, _ in CASES:
        alerts[label] = example(name, producer=producer, **{**NEUTRAL, **overrides})
    by_producer: dict[str, list] = {}
    for alert in alerts.values():
        by_producer.setdefault(alert.header.producer, []).append(alert)
    kafka_adapter.ensure_topics(kafka, kafka_adapter.default_topics())
    for producer, batch in by_producer.items():
        with Publisher(kafka, fed.signers[producer]) as pub:
            pub.publish_many(batch)

    nl = fed.signers["NL-CUSTOMS"]
    genuine = seal(example("suspicious-container", producer="NL-CUSTOMS", **NEUTRAL), nl, SCHEMAS)
    tampered_value = bytearray(genuine.value)
    tampered_value[-3] ^= 0x40
    tampered = SealedRecord(genuine.topic, genuine.key, bytes(tampered_value), genuine.headers)
    replay_original = seal(example("corruption-indicator", producer="NL-CUSTOMS", **NEUTRAL), nl, SCHEMAS)
    # correctly signed, but the value is not Avro of any known schema
    stale = seal(example("corruption-indicator", producer="NL-CUSTOMS",
                         **{**NEUTRAL, "created": (datetime.now(UTC) - timedelta(days=30)).isoformat()}), nl, SCHEMAS)
    junk_headers = build_headers(message_id=example("corruption-indicator").header.message_id, producer="NL-CUSTOMS",
                                 alert_type="corruption-indicator", time=datetime.now(UTC), key_id=nl.key_id)
    junk_value = b"\xc3\x01" + b"\x00" * 8 + b"not avro at all"
    junk = SealedRecord("alerts.corruption-indicator", b"PSN-JUNK0001", junk_value,
                        sign_record(nl, b"PSN-JUNK0001", junk_headers, junk_value))
    hostile = {"tampered": tampered, "replay-first": replay_original, "stale": stale, "junk": junk}
    publish_raw(kafka, [tampered, replay_original, replay_original, stale, junk])

    router = make_router(kafka, world, f"main-{world['suffix']}")
    stats = router.run(max_idle=4)
    return {"alerts": alerts, "hostile": hostile, "stats": stats, "policy": load_policy(world["policy"])}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_feed_gets_exactly_what_the_policy_allows(kafka, world, routed, case):
    label, _, _, _, expected = case
    alert = routed["alerts"][label]
    mid = str(alert.header.message_id)
    policy = routed["policy"]
    got = {p.id for p in policy.partners if mid in feed_ids(kafka, p.feed)}
    assert got == expected, label
    [entry] = audit_by_id(kafka)[mid]
    assert entry["outcome"] == "routed"
    assert set(entry["recipients"]) == expected
    assert set(entry["decisions"]) == {p.id for p in policy.partners}  # every partner's decision recorded
    if not expected:
        assert not any(d["delivered"] for d in entry["decisions"].values())


def test_forwarded_records_are_byte_identical_and_verify_end_to_end(kafka, world, routed):
    alert = routed["alerts"]["country"]
    fed = world["fed"]
    feed = f"feed.t{world['suffix']}.es-customs"
    tail = run_bus("tail", feed, "--json", "--federation", str(fed.directory_path),
                   "--authority-pub", str(fed.authority_pub), settings=kafka, check=True)
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    mine = [r for r in lines if r.get("alert", {}).get("header", {}).get("message_id") == str(alert.header.message_id)]
    assert len(mine) == 1 and mine[0]["verified"] is True
    original = next(m for m in read_all(kafka, "alerts.corruption-indicator")
                if dict(m.headers)[b"ce_id"].decode() == str(alert.header.message_id))
    mid = str(alert.header.message_id)
    forwarded = next(m for m in read_all(kafka, feed) if dict(m.headers)[b"ce_id"].decode() == mid)
    assert (forwarded.key, forwarded.value, forwarded.headers) == (original.key, original.value, original.headers)


def dlq_reasons(kafka) -> Counter:
    return Counter((dict(m.headers)[b"bus_reject_reason"].decode(), dict(m.headers).get(b"ce_id", b"").decode())
                   for m in read_all(kafka, "dlq.rejected"))


def test_rejects_go_to_the_dead_letter_topic_with_a_reason(kafka, routed):
    hostile = routed["hostile"]
    reasons = dlq_reasons(kafka)

    def ce_id(r: SealedRecord) -> str:
        return dict(r.headers)["ce_id"].decode()

    assert reasons[("bad-signature", ce_id(hostile["tampered"]))] == 1
    assert reasons[("replay", ce_id(hostile["replay-first"]))] == 1
    assert reasons[("stale", ce_id(hostile["stale"]))] == 1
    assert reasons[("bad-schema", ce_id(hostile["junk"]))] == 1
    # the original bytes are kept
    junk_id = ce_id(hostile["junk"]).encode()
    junk = [m for m in read_all(kafka, "dlq.rejected") if dict(m.headers).get(b"ce_id") == junk_id]
    assert junk[0].value == hostile["junk"].value
    # and the first copy of the replayed alert was routed once
    [first] = [e for e in audit_by_id(kafka)[ce_id(hostile["replay-first"])] if e["outcome"] == "routed"]
    assert first["recipients"] == []


def test_audit_chain_verifies_and_a_tampered_copy_is_caught(kafka, routed, unique):
    result = run_bus("audit", "verify", settings=kafka)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout
    entries = [m.value for m in read_all(kafka, "audit")]
    assert len(entries) >= len(CASES)
    forged_topic = f"test.audit-copy.{unique}"
    kafka_adapter.ensure_topics(kafka, [kafka_adapter.TopicSpec(forged_topic, 1)])
    doctored = json.loads(entries[2])
    doctored["recipients"] = ["SOMEONE-ELSE"]
    producer = kafka_adapter.producer(kafka)
    for i, raw in enumerate(entries):
        producer.send(forged_topic, value=json.dumps(doctored).encode() if i == 2 else raw)
    producer.flush()
    producer.close()
    result = run_bus("audit", "verify", "--topic", forged_topic, settings=kafka)
    assert result.returncode == 1
    assert "broken at offset 2" in result.stdout


def test_router_killed_mid_stream_loses_and_duplicates_nothing(kafka, world, tmp_path):
    """SIGKILL the router process mid-stream, restart it: each alert exactly once per feed."""
    fed = world["fed"]
    count = 300
    alerts = [example("corruption-indicator", producer="EUROPOL", **{**NEUTRAL, "countries": ["ES"]})
              for _ in range(count)]
    ids = {str(a.header.message_id) for a in alerts}
    with Publisher(kafka, fed.signers["EUROPOL"]) as pub:
        pub.publish_many(alerts)
    feed = f"feed.t{world['suffix']}.es-customs"
    name = f"crash-{world['suffix']}"
    cmd = [sys.executable, "-m", "bus", "router", "run", "--policy", str(world["policy"]),
           "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
           "--state-dir", str(tmp_path / "state"), "--group", f"router-{name}",
           "--transactional-id", f"tx-{name}", "--batch-size", "10"]
    env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap}
    log = open(tmp_path / "router1.log", "wb")  # noqa: SIM115
    first = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = len(ids & set(feed_ids(kafka, feed)))
            if done >= 30:
                break
            time.sleep(0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    routed_before_kill = len(ids & set(feed_ids(kafka, feed)))
    assert 0 < routed_before_kill < count, f"kill was not mid-stream ({routed_before_kill}/{count})"
    second = subprocess.run([*cmd, "--exit-when-idle", "6"], env=env, capture_output=True, text=True,
                            timeout=240, cwd=REPO)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_delivered_once(kafka, feed, ids)
    audit = audit_by_id(kafka)
    assert all(len(audit[i]) == 1 for i in ids)
    assert run_bus("audit", "verify", settings=kafka).returncode == 0


def test_a_transaction_with_an_unknown_outcome_is_settled_from_what_kafka_committed(kafka, world, monkeypatch):
    """A commit that succeeded but whose answer was lost, and one that never finished (a wedged
    client, as when a broker dies): the router rebuilds from committed state, loses and doubles
    nothing, and the audit chain stays whole (a stale in-memory chain head would break it)."""
    fed = world["fed"]
    alerts = [example("corruption-indicator", producer="EUROPOL", **{**NEUTRAL, "countries": ["ES"]})
              for _ in range(60)]
    ids = {str(a.header.message_id) for a in alerts}
    with Publisher(kafka, fed.signers["EUROPOL"]) as pub:
        pub.publish_many(alerts)
    real_commit = transactions.commit
    calls = []

    def flaky_commit(producer, offsets, group_metadata, timeout):
        calls.append(len(calls) + 1)
        if len(calls) == 2:  # committed, but the router never hears so
            real_commit(producer, offsets, group_metadata, timeout)
            raise transactions.TransactionStuck("answer lost (injected)")
        if len(calls) == 4:  # never committed: the transaction is left open on the broker
            raise transactions.TransactionStuck("wedged (injected)")
        real_commit(producer, offsets, group_metadata, timeout)

    monkeypatch.setattr(transactions, "commit", flaky_commit)
    router = make_router(kafka, world, f"unknown-{world['suffix']}", batch_size=10, commit_timeout=5)
    stats = router.run(max_idle=4)

    assert stats.recoveries == 2
    assert_delivered_once(kafka, f"feed.t{world['suffix']}.es-customs", ids)
    audit = audit_by_id(kafka)
    assert all(len(audit[i]) == 1 for i in ids)
    assert run_bus("audit", "verify", settings=kafka).returncode == 0


def test_router_stops_gracefully_on_sigterm(kafka, world, tmp_path):
    fed = world["fed"]
    cmd = [sys.executable, "-m", "bus", "router", "run", "--policy", str(world["policy"]),
           "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
           "--state-dir", str(tmp_path / "state"), "--group", f"router-term-{world['suffix']}",
           "--transactional-id", f"tx-term-{world['suffix']}"]
    proc = subprocess.Popen(cmd, env={**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        started = False
        lines = []
        while time.monotonic() < deadline and not started:
            line = proc.stderr.readline()
            lines.append(line)
            started = "router started" in line
        assert started, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "router stopped" in err
    assert json.loads(next(line for line in err.splitlines() if "router stopped" in line))["event"] == "router stopped"


def test_policy_explain_cli_names_the_deciding_rule(world, tmp_path):
    alert = example("corruption-indicator", producer="EUROPOL", **{**NEUTRAL, "countries": ["ES"]})
    path = tmp_path / "alert.json"
    path.write_text(alert.model_dump_json())
    result = run_bus("policy", "explain", "--policy", str(world["policy"]), str(path), "--json", check=True)
    assert "r-country" in result.stdout
    assert Path(world["policy"]).exists()
