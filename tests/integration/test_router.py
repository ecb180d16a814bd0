"""The policy router against a real broker: feeds, dead letters, receipts, audit chains and checkpoints."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.adapters.kafka import Engine, open_engine, text_headers
from bus.adapters.kafka.reading import ensure_topics
from bus.core.audit import canonical, checkpoint_signing_input, recomputed_hash
from bus.core.confidential import Decryptor, decrypt, seal_encrypted, unseal_any
from bus.core.envelope import build_headers
from bus.core.keys import SigningKey
from bus.core.placement import partition_for
from bus.core.policy import evaluate, parse_policy
from bus.core.receipts import RECEIPT_TYPE, claimed_type, verify_router_record
from bus.core.sealing import SealedRecord
from bus.core.signing import sign_record
from bus.core.topology import (
    AUDIT_CHECKPOINTS_TOPIC,
    AUDIT_TOPIC,
    CHANGELOG_TOPIC,
    DLQ_TOPIC,
    Replication,
    TopicSpec,
    receipts_topic,
    receipts_topic_spec,
)
from bus.services.router import FileSources, Router, RouterIdentity, RouterOptions
from tests.helpers import CODES, REPO, SCHEMAS, StreamLines, example, run_bus, wait_for
from tests.router_support import (
    NEUTRAL,
    ce_id,
    demo_federation,
    ensure_router_topics,
    feed_ids,
    header,
    policy_doc,
    read,
    route,
    router_command,
    sealed,
    send_all,
    spread_alert,
    start_at_end,
)

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
def engine(kafka) -> Engine:
    engine = open_engine(kafka)
    ensure_router_topics(engine)
    return engine


@pytest.fixture(scope="module")
def world(kafka, tmp_path_factory) -> dict[str, Any]:
    """A demo federation, a policy with this module's own feed topics, this module's router group."""
    base = tmp_path_factory.mktemp("router")
    fed = demo_federation(base / "federation")
    suffix = os.urandom(3).hex()
    policy_path = base / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy_doc(f"feed.t{suffix}.")))
    return {"base": base, "fed": fed, "policy": policy_path, "suffix": suffix,
            "trust": ["--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub)]}


def feed(world: dict[str, Any], partner: str) -> str:
    return f"feed.t{world['suffix']}.{partner.lower()}"


def make_router(engine: Engine, world: dict[str, Any], name: str, **options: Any) -> Router:
    fed = world["fed"]
    sources = FileSources(world["policy"], federation=fed.directory_path, authority_pub=fed.authority_pub,
                          state_dir=world["base"] / f"state-{name}")
    opts = RouterOptions(state_dir=world["base"] / f"state-{name}", group_id=f"router-{name}",
                         **{"checkpoint_every": 5, **options})
    start_at_end(engine, opts.group_id)
    return Router(engine, sources.load, RouterIdentity(fed.router_id, fed.router_signer), opts,
                  changed=sources.changed)


def audit_by_id(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    entries: dict[str, list[dict[str, Any]]] = {}
    for r in read(engine, AUDIT_TOPIC):
        e = json.loads(r.value or b"")
        if isinstance(e.get("message_id"), str):
            entries.setdefault(e["message_id"], []).append(e)
    return entries


def junk_record(signer: SigningKey) -> SealedRecord:
    """Correctly signed, but the value is not Avro of any known schema."""
    mid = example("corruption-indicator").header.message_id
    headers = build_headers(message_id=mid, producer=signer.member, alert_type="corruption-indicator",
                            time=datetime.now(UTC), key_id=signer.key_id)
    value = b"\xc3\x01" + b"\x00" * 8 + b"not avro at all"
    return SealedRecord("alerts.corruption-indicator", b"PSN-JUNK0001", value,
                        sign_record(signer, b"PSN-JUNK0001", headers, value))


@pytest.fixture(scope="module")
def routed(engine, world) -> dict[str, Any]:
    """Every case plus hostile records, routed by one router until idle."""
    fed = world["fed"]
    router = make_router(engine, world, f"main-{world['suffix']}")
    alerts = {label: example(name, producer=producer, **{**NEUTRAL, **overrides})
              for label, name, producer, overrides, _ in CASES}
    nl = fed.signers["NL-CUSTOMS"]
    genuine = sealed(example("suspicious-container", producer="NL-CUSTOMS", **NEUTRAL), nl)
    tampered_value = bytearray(genuine.value)
    tampered_value[-3] ^= 0x40
    tampered = SealedRecord(genuine.topic, genuine.key, bytes(tampered_value), genuine.headers)
    replayed = sealed(example("corruption-indicator", producer="NL-CUSTOMS", **NEUTRAL), nl)
    stale = sealed(example("corruption-indicator", producer="NL-CUSTOMS",
                           **{**NEUTRAL, "created": (datetime.now(UTC) - timedelta(days=30)).isoformat()}), nl)
    hostile = {"tampered": tampered, "replay": replayed, "stale": stale, "junk": junk_record(nl)}
    send_all(engine, [sealed(a, fed.signers[a.header.producer]) for a in alerts.values()])
    send_all(engine, [tampered, replayed, replayed, stale, hostile["junk"]])
    stats = route(router, len(alerts) + 5)
    policy = parse_policy(yaml.safe_load(world["policy"].read_text()))
    return {"alerts": alerts, "hostile": hostile, "stats": stats, "policy": policy,
            "feeds": {p.id: feed_ids(engine, p.feed) for p in policy.partners}, "audit": audit_by_id(engine)}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_feed_gets_exactly_what_the_policy_allows(world, routed, case):
    label, _, _, _, expected = case
    mid = str(routed["alerts"][label].header.message_id)
    got = {partner for partner, ids in routed["feeds"].items() if ids[mid]}
    assert got == expected, label
    assert all(ids[mid] <= 1 for ids in routed["feeds"].values())
    [entry] = routed["audit"][mid]
    assert entry["outcome"] == "routed" and set(entry["recipients"]) == expected
    assert set(entry["decisions"]) == {p.id for p in routed["policy"].partners}


def test_forwarded_records_are_the_originals_plus_the_rule_that_delivered_them(engine, world, routed):
    alert = routed["alerts"]["country"]
    mid = str(alert.header.message_id)
    original = next(r for r in read(engine, "alerts.corruption-indicator") if ce_id(r) == mid)
    [forwarded] = [r for r in read(engine, feed(world, "ES-CUSTOMS")) if ce_id(r) == mid]
    assert (forwarded.key, forwarded.value) == (original.key, original.value)
    assert forwarded.headers == (*original.headers, (b"bus_route_rule", b"r-country"))
    verified = unseal_any(forwarded.key, forwarded.value, text_headers(forwarded.headers), world["fed"].directory,
                          SCHEMAS, CODES)
    assert str(verified.message_id) == mid


def test_rejects_go_to_the_dead_letter_topic_with_the_routers_reason(engine, routed):
    hostile = routed["hostile"]
    reasons = Counter((header(r, b"bus_reject_reason"), ce_id(r)) for r in read(engine, DLQ_TOPIC))

    def mid(record: SealedRecord) -> str:
        return dict(record.headers)["ce_id"].decode()

    assert reasons[("bad-signature", mid(hostile["tampered"]))] == 1
    assert reasons[("replay", mid(hostile["replay"]))] == 1
    assert reasons[("stale", mid(hostile["stale"]))] == 1
    assert reasons[("bad-schema", mid(hostile["junk"]))] == 1
    [junk] = [r for r in read(engine, DLQ_TOPIC) if ce_id(r) == mid(hostile["junk"])]
    assert junk.value == hostile["junk"].value  # the original bytes are kept
    [first] = [e for e in routed["audit"][mid(hostile["replay"])] if e["outcome"] == "routed"]
    assert first["recipients"] == []


def test_tail_of_the_dead_letter_topic_shows_the_routers_reason(kafka, world, routed):
    """A replay or a stale alert verifies fine today: the reason shown is the one the router recorded."""
    tail = run_bus("tail", "dlq.rejected", "--json", *world["trust"], settings=kafka, check=True)
    lines = [json.loads(line) for line in tail.stdout.splitlines()]

    def shown(label: str) -> list[dict[str, Any]]:
        mid = dict(routed["hostile"][label].headers)["ce_id"].decode()
        return [v for v in lines if ((v.get("dead_letter") or {}).get("claimed") or {}).get("message_id") == mid]

    [replay] = shown("replay")
    [stale] = shown("stale")
    assert (replay["reason"], replay["verified"], replay["verified_now"]) == ("replay", False, True)
    assert stale["reason"] == "stale" and stale["dead_letter"]["source"]["topic"] == "alerts.corruption-indicator"
    assert all(v["dead_letter"]["form"] == "copy" for v in (replay, stale))
    tampered = routed["hostile"]["tampered"]
    assert any(v["reason"] == "bad-signature" and not v["verified_now"] and v["key"] == tampered.key.decode()
               for v in lines)


def test_producers_get_signed_receipts_for_what_they_sent(engine, world, routed):
    receipts = {}
    ours = {dict(r.headers)["ce_id"] for r in routed["hostile"].values()}
    for r in read(engine, "receipts.nl-customs"):
        headers = text_headers(r.headers)
        if claimed_type(headers) == RECEIPT_TYPE and r.key in ours:
            value = verify_router_record(r.key, r.value, headers, world["fed"].directory).value
            receipts.setdefault(value["message_id"], []).append(value)
    hostile = routed["hostile"]
    assert [v["reason"] for v in receipts[dict(hostile["stale"].headers)["ce_id"].decode()]] == ["stale"]
    assert [v["outcome"] for v in receipts[dict(hostile["replay"].headers)["ce_id"].decode()]] == ["routed", "rejected"]
    assert dict(hostile["tampered"].headers)["ce_id"].decode() not in receipts  # unproven sender: no receipt


def test_the_audit_trail_verifies_and_every_kind_of_tampering_is_caught(engine, kafka, world, routed, unique):
    ok = run_bus("audit", "verify", *world["trust"], settings=kafka)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "audit chain intact" in ok.stdout
    records = read(engine, AUDIT_TOPIC)
    chain = max({r.partition for r in records}, key=lambda p: sum(1 for r in records if r.partition == p))
    mine = [json.loads(r.value or b"") for r in records if r.partition == chain]
    checkpoints = [e for e in mine if e["kind"] == "checkpoint"]
    assert checkpoints, "the router checkpointed the chain it wrote"
    decided = [i for i, e in enumerate(mine) if e["kind"] == "decision" and 0 < i < mine.index(checkpoints[-1])]
    k = decided[-1]

    def rehash(entries: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
        for i in range(start, len(entries)):
            entries[i]["seq"] = i + 1
            entries[i]["prev_hash"] = entries[i - 1]["hash"] if i else "0" * 64
            entries[i]["hash"] = recomputed_hash(entries[i])
        return entries

    rewritten = [dict(e) for e in mine]
    rewritten[k] = {**rewritten[k], "recipients": ["SOMEONE-ELSE"]}
    forger = SigningKey.generate("EPA-ROUTER-1")
    unknown_key = [dict(e) for e in mine]
    cp_index = mine.index(checkpoints[-1])
    forged_cp = {**unknown_key[cp_index], "key_id": forger.key_id}
    forged_cp["signature"] = base64.b64encode(forger.sign(checkpoint_signing_input(forged_cp))).decode()
    forged_cp["hash"] = recomputed_hash(forged_cp)
    unknown_key[cp_index] = forged_cp
    variants = {
        "removed": mine[:k] + mine[k + 1:],
        "reordered": [*mine[:k - 1], mine[k], mine[k - 1], *mine[k + 1:]],
        "rewritten with valid-looking hashes": rehash(rewritten, k),
        "checkpoint by an unknown key": rehash(unknown_key, cp_index + 1),
    }
    for name, entries in variants.items():
        topic = f"test.audit-copy.{unique}.{name.replace(' ', '-')}"
        producer = engine.producer()
        admin = engine.admin()
        ensure_topics(admin, [TopicSpec(topic, chain + 1), TopicSpec(f"{topic}.cp", 1)])
        admin.close()
        for e in entries:
            producer.send(topic, canonical(e), partition=chain)
        producer.flush(30)
        producer.close()
        result = run_bus("audit", "verify", "--topic", topic, "--checkpoints-topic", f"{topic}.cp", *world["trust"],
                         settings=kafka)
        assert result.returncode == 1, f"{name} was not caught:\n{result.stdout}\n{result.stderr}"
        assert f"chain {chain} broken" in result.stdout, name


def test_replays_to_every_partition_and_to_another_alert_topic_are_refused(engine, world):
    router = make_router(engine, world, f"replay-{world['suffix']}")
    record = sealed(example("corruption-indicator", producer="EUROPOL", **{**NEUTRAL, "countries": ["ES"]}),
                    world["fed"].signers["EUROPOL"])
    mid = dict(record.headers)["ce_id"].decode()
    producer = engine.producer()
    headers = tuple((k.encode(), v) for k, v in record.headers)
    for p in range(6):
        producer.send(record.topic, record.value, key=record.key, headers=headers, partition=p).result(30)
    producer.send("alerts.operation-notice", record.value, key=record.key, headers=headers,
                  partition=partition_for(record.key, 6)).result(30)
    producer.close()
    router.run(max_idle=4)
    assert feed_ids(engine, feed(world, "ES-CUSTOMS"))[mid] == 1
    reasons = Counter(header(r, b"bus_reject_reason") for r in read(engine, DLQ_TOPIC) if ce_id(r) == mid)
    assert reasons == {"misplaced": 6}


def test_router_stops_gracefully_on_sigterm_and_checkpoints_first(engine, kafka, world, tmp_path):
    group = f"router-term-{world['suffix']}"
    start_at_end(engine, group)
    cmd = router_command(world["fed"], world["policy"], tmp_path / "state", group=group, extra=["--log-level", "INFO"])
    proc = subprocess.Popen(cmd, env={**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stderr is not None
    log = StreamLines(proc.stderr)
    try:
        log.wait_for(lambda line: "tasks restored" in line, 90, "the router to restore its tasks")
        ids = send_all(engine, [sealed(example("corruption-indicator", producer="EUROPOL",
                                               **{**NEUTRAL, "countries": ["ES"]}), world["fed"].signers["EUROPOL"])])
        wait_for(lambda: feed_ids(engine, feed(world, "ES-CUSTOMS"))[ids[0]] == 1, 60, "the alert to be routed")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err = log.text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    stopped = json.loads(next(line for line in err.splitlines() if "router stopped" in line))
    assert stopped["event"] == "router stopped" and stopped["checkpoints"] >= 1
    [entry] = audit_by_id(engine)[ids[0]]
    covered = [json.loads(r.value or b"") for r in read(engine, AUDIT_CHECKPOINTS_TOPIC)]
    assert any(c["chain"] == entry["chain"] and c["covers"]["first_seq"] <= entry["seq"] <= c["covers"]["last_seq"]
               for c in covered)


def test_policy_explain_cli_names_the_deciding_rule(world, tmp_path):
    alert = example("corruption-indicator", producer="EUROPOL", **{**NEUTRAL, "countries": ["ES"]})
    path = tmp_path / "alert.json"
    path.write_text(alert.model_dump_json())
    result = run_bus("policy", "explain", "--policy", str(world["policy"]), str(path), "--json", check=True)
    assert "r-country" in result.stdout


def test_the_router_serves_health_and_metrics(engine, world):
    import urllib.request

    router = make_router(engine, world, f"health-{world['suffix']}", health_port=0)
    router.start()
    try:
        wait_for(lambda: router.turn() is not None and router._ready, 60, "the router to be ready")
        host, port = router.health_address  # type: ignore[misc]
        with urllib.request.urlopen(f"http://{host}:{port}/readyz") as response:
            assert json.loads(response.read())["tasks"] == list(range(6))
        with urllib.request.urlopen(f"http://{host}:{port}/metrics") as response:
            assert b"bus_router_tasks 6.0" in response.read()
    finally:
        router.close()


# -- encrypted and plain alerts side by side (issue 13) ------------------------------------------

PARTNER_IDS = [p["id"] for p in policy_doc()["partners"]]
facts = st.fixed_dictionaries({
    "tlp": st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]),
    "handling_codes": st.lists(st.sampled_from(["H0", "H1", "H2"]), unique=True, max_size=2),
    "release_to": st.lists(st.sampled_from(PARTNER_IDS), unique=True, max_size=3),
    "countries": st.lists(st.sampled_from(["ES", "NL", "BE", "DE"]), unique=True, max_size=2),
    "ports": st.lists(st.sampled_from(["DEHAM", "NLRTM", "ESALG"]), unique=True, max_size=2),
    "source_reliability": st.sampled_from(["A", "B", "C"]),
    "information_assessment": st.sampled_from(["1", "2", "3"]),
})
cases = st.tuples(facts, st.sampled_from(["EUROPOL", "PORT-ROTTERDAM", "ES-CUSTOMS"]), st.booleans())


def test_policy_restrictions_hold_for_encrypted_and_plain_alerts_side_by_side(engine, world):
    """Property: whatever the routing facts, an alert reaches exactly the partners the policy names
    and, encrypted, only those that also hold a wrapped key; never one outside a non-empty
    release_to, nor beyond TLP:RED or H2's named recipients; each encrypted copy opens for its
    recipient."""
    fed = world["fed"]
    policy = parse_policy(yaml.safe_load(world["policy"].read_text()))
    router = make_router(engine, world, f"mixed-{world['suffix']}")
    drawn: list[tuple[Any, bool]] = []

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(cases)
    def draw(case: tuple[dict[str, Any], str, bool]) -> None:
        header, producer, encrypt = case
        drawn.append((spread_alert(producer, **{**NEUTRAL, **header}), encrypt and bool(header["release_to"])))

    draw()
    # Floors, whatever hypothesis draws: five encrypted and five plain alerts of fixed facts.
    for recipient in ("NL-CUSTOMS", "BE-CUSTOMS", "DE-CUSTOMS", "NL-POLICE", "BE-FEDPOL"):
        red = {"tlp": "RED", "handling_codes": ["H2"], "release_to": [recipient, "EUROPOL"], "countries": ["ES"],
               "ports": ["DEHAM"], "source_reliability": "A", "information_assessment": "1"}
        drawn.append((spread_alert("PORT-ROTTERDAM", **{**NEUTRAL, **red}), True))
        drawn.append((spread_alert("PORT-ROTTERDAM", **{**NEUTRAL, **red, "tlp": "GREEN", "handling_codes": [],
                                                        "release_to": []}), False))
    records = [seal_encrypted(a, fed.signers[a.header.producer], fed.directory, SCHEMAS) if enc
               else sealed(a, fed.signers[a.header.producer]) for a, enc in drawn]
    send_all(engine, records)
    route(router, len(records))
    delivered: dict[str, dict[str, list[Any]]] = {}
    for partner in policy.partners:
        for r in read(engine, partner.feed):
            mid = ce_id(r)
            if mid is not None:
                delivered.setdefault(mid, {}).setdefault(partner.id, []).append(r)
    for alert, encrypted in drawn:
        h = alert.header
        mid = str(h.message_id)
        got = delivered.get(mid, {})
        expected = set(evaluate(policy, alert).recipients)
        assert set(got) == expected, (mid, encrypted, h.tlp, h.handling_codes, h.release_to, set(got))
        assert all(len(copies) == 1 for copies in got.values())
        if h.release_to or h.tlp.value == "RED" or "H2" in h.handling_codes:
            assert set(got) <= set(h.release_to), mid
        assert h.producer not in got
        for partner, [copy] in got.items():
            verdict = unseal_any(copy.key, copy.value, text_headers(copy.headers), fed.directory, SCHEMAS, CODES)
            if encrypted:
                assert partner in {w.member for w in verdict.recipients}  # type: ignore[union-attr]
                opened = decrypt(verdict, Decryptor.of([fed.decryption_keys[partner]]), SCHEMAS, CODES)  # type: ignore[arg-type]
                assert opened.alert == alert
            else:
                assert verdict.alert == alert  # type: ignore[union-attr]


def test_the_operator_learns_nothing_from_a_routed_encrypted_alert(engine, world, capsys):
    """Issue 13: after routing an encrypted TLP:RED alert (and a replay of it, dead-lettered), no
    record the operator can read (alert topic, feeds, DLQ, audit, checkpoints, receipts,
    changelog) nor the router's debug log holds its subject or a piece of its summary; the named
    recipient still opens it."""
    import secrets

    import structlog

    from bus.logs import configure

    fed = world["fed"]
    marker = secrets.token_hex(8)
    alert = spread_alert("PORT-ROTTERDAM", **{**NEUTRAL, "tlp": "RED", "countries": ["ES"],
                                              "release_to": ["ES-CUSTOMS", "EUROPOL"],
                                              "summary": f"Bribed crane operator {marker} moves flagged reefers"})
    record = seal_encrypted(alert, fed.signers["PORT-ROTTERDAM"], fed.directory, SCHEMAS)
    mid = str(alert.header.message_id)
    receipts = receipts_topic("PORT-ROTTERDAM")
    admin = engine.admin()
    try:
        ensure_topics(admin, [receipts_topic_spec(receipts, Replication.for_cluster(admin.describe_cluster().brokers))])
    finally:
        admin.close()
    configure(json=True, level="DEBUG")
    try:
        router = make_router(engine, world, f"opaque-{world['suffix']}")
        send_all(engine, [record, record])  # the second copy is a replay: the DLQ keeps it
        route(router, 2)
    finally:
        structlog.reset_defaults()
    logs = capsys.readouterr()

    [copy] = [r for r in read(engine, feed(world, "ES-CUSTOMS")) if ce_id(r) == mid]  # routed, so the check can fail
    opened = decrypt(unseal_any(copy.key, copy.value, text_headers(copy.headers), fed.directory, SCHEMAS, CODES),
                     Decryptor.of([fed.decryption_keys["ES-CUSTOMS"]]), SCHEMAS, CODES)  # type: ignore[arg-type]
    assert opened.alert == alert and marker in opened.alert.header.summary
    assert mid in logs.out + logs.err, "the router logged this alert at debug level"

    secret_bytes = [alert.subject_reference.encode(), marker.encode(), b"Bribed crane", b"flagged reefers"]
    feeds = [p["feed"] for p in yaml.safe_load(world["policy"].read_text())["partners"]]
    topics = {record.topic, DLQ_TOPIC, AUDIT_TOPIC, AUDIT_CHECKPOINTS_TOPIC, CHANGELOG_TOPIC, receipts, *feeds}
    seen = 0
    for topic in sorted(topics):
        for r in read(engine, topic):
            blobs = [r.key or b"", r.value or b"", *(v or b"" for _, v in r.headers)]
            seen += any(mid.encode() in b for b in blobs)
            for secret in secret_bytes:
                assert not any(secret in b for b in blobs), (topic, secret)
    assert seen >= 5, "the alert, its feed copy, its dead-lettered replay, its audit entries and receipts were read"
    for secret in secret_bytes:
        assert secret.decode() not in logs.out + logs.err, secret
