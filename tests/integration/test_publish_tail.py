"""The foundation against a real broker: publish, read back, prove who wrote it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.adapters.keystore import generate_keypair
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from bus.core.sealing import SealedRecord, seal
from bus.errors import RejectReason
from tests.helpers import SCHEMAS, create_topic, example, keyring_for, publish_raw, read_all, run_bus

TYPES = ["suspicious-container", "corruption-indicator", "operation-notice"]
COVERED = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "bus_keyid"]
OTHER_ENGINE = "kafka-python"
"""The conformance subset (publish and tail) also runs on the engine the suite does not default to."""


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return SigningKey.generate("NL-CUSTOMS")


@pytest.fixture(params=["default", OTHER_ENGINE])
def either_engine(request: pytest.FixtureRequest, kafka: KafkaSettings) -> KafkaSettings:
    """The suite's settings, and the same broker through the other engine."""
    return kafka if request.param == "default" else kafka.model_copy(update={"engine": OTHER_ENGINE})


def scratch_topic(settings, unique: str) -> str:
    return create_topic(settings, f"test.scratch.{unique}")


def produce_raw(settings, topic: str, key, value: bytes, headers) -> None:
    publish_raw(settings, [SealedRecord(topic, key, value, headers)])


def read_verified(settings, topic: str, signer: SigningKey):
    with Bus(settings).feed_reader(topic, keyring_for(signer), idle_timeout=2) as reader:
        return list(reader.records())


def test_the_engine_named_is_the_engine_used(either_engine):
    assert Bus(either_engine).engine.name == either_engine.engine


@pytest.mark.parametrize("alert_type", TYPES)
def test_every_alert_type_round_trips_verified(kafka, signer, alert_type):
    alert = example(alert_type)
    with Bus(kafka).publisher(signer, create_topics=True) as publisher:
        receipt = publisher.publish(alert)
    assert receipt.topic == f"alerts.{alert_type}"
    assert receipt.message_id == str(alert.header.message_id)
    records = read_verified(kafka, receipt.topic, signer)
    mine = [r for r in records if r.offset == receipt.offset and r.partition == receipt.partition]
    assert len(mine) == 1 and mine[0].ok, mine
    assert mine[0].verified.alert == alert
    assert mine[0].verified.key_id == signer.key_id
    assert mine[0].key == alert.partition_key().encode()


def test_related_alerts_share_a_partition_and_read_back_verified_on_either_engine(either_engine, signer):
    first, second = example("suspicious-container"), example("suspicious-container")
    with Bus(either_engine).publisher(signer, create_topics=True) as publisher:
        a, b = publisher.publish_many([first, second])
    assert a.partition == b.partition and b.offset > a.offset
    records = read_verified(either_engine, a.topic, signer)
    mine = {(r.partition, r.offset): r for r in records}
    for receipt, alert in ((a, first), (b, second)):
        rec = mine[(receipt.partition, receipt.offset)]
        assert rec.ok and rec.verified.alert == alert


def tampered_variants(record):
    """(label, key, headers, value) for each single change a forger could make."""
    yield "key", record.key + b"X", record.headers, record.value
    for name in COVERED:
        headers = [(k, v + b"x" if k == name else v) for k, v in record.headers]
        yield f"header {name}", record.key, headers, record.value
    flipped = bytearray(record.value)
    flipped[len(flipped) // 2] ^= 0x01
    yield "value", record.key, record.headers, bytes(flipped)
    duplicate = ("ce_source", dict(record.headers)["ce_source"])
    yield "duplicated header", record.key, [*record.headers, duplicate], record.value
    yield "missing header", record.key, [(k, v) for k, v in record.headers if k != "ce_time"], record.value
    yield "missing signature", record.key, [(k, v) for k, v in record.headers if k != "bus_sig"], record.value


def test_any_tampering_fails_verification_on_the_real_broker(kafka, signer, unique):
    record = seal(example("suspicious-container"), signer, SCHEMAS)
    topic = scratch_topic(kafka, unique)
    variants = list(tampered_variants(record))
    produce_raw(kafka, topic, record.key, record.value, record.headers)  # the genuine one
    for _, key, headers, value in variants:
        produce_raw(kafka, topic, key, value, headers)
    records = read_verified(kafka, topic, signer)
    assert len(records) == 1 + len(variants)
    assert records[0].ok
    for (label, *_), rec in zip(variants, records[1:], strict=True):
        assert not rec.ok, f"tampered {label} verified"
        assert rec.error.reason in (RejectReason.BAD_SIGNATURE, RejectReason.BAD_SCHEMA), label


def test_unknown_key_is_reported_as_such(kafka, signer, unique):
    stranger = SigningKey.generate("NL-CUSTOMS")
    record = seal(example("corruption-indicator"), stranger, SCHEMAS)
    topic = scratch_topic(kafka, unique)
    produce_raw(kafka, topic, record.key, record.value, record.headers)
    [rec] = read_verified(kafka, topic, signer)
    assert rec.error.reason == RejectReason.UNKNOWN_KEY


# --- the command line -----------------------------------------------------------

@pytest.fixture(scope="module")
def member_keys(tmp_path_factory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    generate_keypair("NL-CUSTOMS", keys)
    return keys


def end_offsets(settings, topic: str) -> int:
    return len(read_all(settings, topic))


def test_cli_publish_then_tail_json_shows_verified(either_engine, member_keys, tmp_path):
    engine = ["--engine", either_engine.engine]
    result = run_bus("publish", "--file", "examples/alerts/batch.jsonl", "--member", "NL-CUSTOMS", *engine,
                     "--key", str(member_keys / "NL-CUSTOMS.key"), "--json", settings=either_engine, check=True)
    receipts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(receipts) >= 2
    assert {r["topic"] for r in receipts} == {"alerts.suspicious-container"}
    tail = run_bus("tail", "alerts.suspicious-container", "--from-beginning", "--json", *engine,
                   "--keys", str(member_keys), settings=either_engine, check=True)
    seen = {json.loads(line)["alert"]["header"]["message_id"]: json.loads(line)
            for line in tail.stdout.splitlines() if '"verified": true' in line}
    for r in receipts:
        assert r["message_id"] in seen
        assert seen[r["message_id"]]["key_id"]


def test_cli_tail_table_is_readable(kafka, member_keys):
    # H2: encrypted by default; this test is about the table of plain alerts
    run_bus("publish", "--file", "examples/alerts/operation-notice.json", "--member", "NL-CUSTOMS", "--no-encrypt",
            "--key", str(member_keys / "NL-CUSTOMS.key"), settings=kafka, check=True)
    tail = run_bus("tail", "alerts.operation-notice", "--keys", str(member_keys), settings=kafka, check=True)
    assert "verified" in tail.stdout and "NL-CUSTOMS" in tail.stdout and "TLP:" in tail.stdout


def bad_files(tmp_path: Path) -> list[tuple[str, Path, str, str]]:
    """(label, file, alert type, text the error must contain)."""
    good = json.loads(Path("examples/alerts/suspicious-container.json").read_text())
    cases = []

    def write(name: str, content: str) -> Path:
        p = tmp_path / name
        p.write_text(content)
        return p

    cases.append(("invalid json", write("broken.json", '{"header": {'), "suspicious-container", "invalid JSON"))
    missing = json.loads(json.dumps(good))
    del missing["container_number"]
    cases.append(("missing field", write("missing.json", json.dumps(missing)), "suspicious-container",
                  "container_number"))
    digit = json.loads(json.dumps(good))
    digit["container_number"] = digit["container_number"][:-1] + str((int(digit["container_number"][-1]) + 1) % 10)
    cases.append(("check digit", write("digit.json", json.dumps(digit)), "suspicious-container", "check digit"))
    country = json.loads(json.dumps(good))
    country["header"]["countries"] = ["XX"]
    cases.append(("bad country", write("country.json", json.dumps(country)), "suspicious-container", "countries"))
    big = json.loads(json.dumps(good))
    big["header"]["summary"] = "x" * 100_000
    cases.append(("oversized alert", write("big.json", json.dumps(big)), "suspicious-container", "at most"))
    long = json.loads(json.dumps(good))
    long["header"]["summary"] = "x" * 600
    cases.append(("over-long field", write("long.json", json.dumps(long)), "suspicious-container", "summary"))
    lines = write("mixed.jsonl", json.dumps(good) + "\n" + json.dumps(digit) + "\n")
    cases.append(("one bad line in a batch", lines, "suspicious-container", "line 2"))
    return cases


def test_cli_bad_input_names_the_problem_and_publishes_nothing(kafka, member_keys, tmp_path):
    key = str(member_keys / "NL-CUSTOMS.key")
    Bus(kafka).ensure_alert_topics()
    before = end_offsets(kafka, "alerts.suspicious-container")
    for label, path, alert_type, expected in bad_files(tmp_path):
        result = run_bus("publish", "--type", alert_type, "--file", str(path), "--member", "NL-CUSTOMS",
                         "--key", key, settings=kafka)
        assert result.returncode != 0, label
        assert expected in result.stderr, (label, result.stderr)
        assert "Traceback" not in result.stderr, label
    assert end_offsets(kafka, "alerts.suspicious-container") == before


def test_cli_unknown_type_and_unreadable_key(kafka, member_keys, tmp_path):
    result = run_bus("publish", "--type", "bogus", "--file", "examples/alerts/suspicious-container.json",
                     "--member", "NL-CUSTOMS", "--key", str(member_keys / "NL-CUSTOMS.key"), settings=kafka)
    assert result.returncode == 2 and "bogus" in result.stderr
    result = run_bus("publish", "--file", "examples/alerts/suspicious-container.json", "--member", "NL-CUSTOMS",
                     "--key", str(tmp_path / "nope.key"), settings=kafka)
    assert result.returncode == 2 and "nope.key" in result.stderr and "Traceback" not in result.stderr
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    result = run_bus("publish", "--file", "examples/alerts/suspicious-container.json", "--member", "NL-CUSTOMS",
                     "--key", str(garbage), settings=kafka)
    assert result.returncode == 2 and "garbage.key" in result.stderr


def test_keygen_writes_private_key_0600(tmp_path):
    result = run_bus("keygen", "--member", "BE-FEDPOL", "--out", str(tmp_path), check=True)
    assert (tmp_path / "BE-FEDPOL.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "BE-FEDPOL.pub").exists()
    assert "key id" in result.stdout


def test_unreachable_broker_is_a_clear_error(member_keys):
    result = run_bus("publish", "--file", "examples/alerts/suspicious-container.json", "--member", "NL-CUSTOMS",
                     "--key", str(member_keys / "NL-CUSTOMS.key"),
                     settings=KafkaSettings(bootstrap="127.0.0.1:1"))
    assert result.returncode != 0
    assert "cannot reach Kafka" in result.stderr


def test_cli_tail_filters_by_type_and_time(kafka, member_keys):
    run_bus("publish", "--file", "examples/alerts/corruption-indicator.json", "--member", "NL-CUSTOMS", "--no-encrypt",
            "--key", str(member_keys / "NL-CUSTOMS.key"), settings=kafka, check=True)
    keys = ["--keys", str(member_keys)]
    every = run_bus("tail", "alerts.corruption-indicator", "--json", *keys, settings=kafka, check=True)
    assert every.stdout.strip()
    other_type = run_bus("tail", "alerts.corruption-indicator", "--json", "--type", "operation-notice", *keys,
                         settings=kafka, check=True)
    assert other_type.stdout.strip() == ""
    future = run_bus("tail", "alerts.corruption-indicator", "--json", "--since", "2999-01-01T00:00:00", *keys,
                     settings=kafka, check=True)
    assert future.stdout.strip() == ""
    past = run_bus("tail", "alerts.corruption-indicator", "--json", "--since", "2000-01-01T00:00:00", *keys,
                   settings=kafka, check=True)
    assert len(past.stdout.splitlines()) == len(every.stdout.splitlines())
