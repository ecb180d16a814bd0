"""Encrypted alerts on a real broker: what `bus publish` writes, what the operator can read
from the topic, and what `bus tail` shows to named members, other members and nobody."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from bus.adapters.federation_file import DemoFederation, make_demo
from bus.composition import Bus
from bus.core.confidential import Decryptor, EncryptionPolicy, EncryptMode
from bus.errors import DecryptionError, RejectReason
from tests.helpers import EXAMPLES, example, read_all, run_bus

TOPIC = "alerts.corruption-indicator"
EXAMPLE = json.loads((EXAMPLES / "corruption-indicator.json").read_text())
SECRETS = [EXAMPLE["header"]["summary"][:40], EXAMPLE["subject_reference"], *EXAMPLE["linked_containers"],
           EXAMPLE["description"][:40], EXAMPLE["header"]["h3_conditions"][:40]]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return make_demo(tmp_path_factory.mktemp("fed") / "demo")


def trust(fed: DemoFederation) -> list[str]:
    return ["--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub)]


def publish(kafka: Any, fed: DemoFederation, *extra: str, file: str = "examples/alerts/corruption-indicator.json"):
    return run_bus("publish", "--file", file, "--member", "BE-FEDPOL", "--key",
                   str(fed.keys_dir / "BE-FEDPOL.key"), "--json", *extra, settings=kafka)


def tail_json(kafka: Any, fed: DemoFederation, *extra: str) -> list[dict[str, Any]]:
    result = run_bus("tail", TOPIC, "--json", *trust(fed), *extra, settings=kafka, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_a_red_alert_is_published_encrypted_and_only_named_members_read_it(kafka, fed):
    result = publish(kafka, fed, *trust(fed))
    assert result.returncode == 0, result.stderr
    [receipt] = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert receipt["encrypted"] is True and "1 encrypted" in result.stderr
    mid = receipt["message_id"]

    # the operator's view: the raw records on the topic
    [raw] = [m for m in read_all(kafka, TOPIC) if m.key == mid.encode()]
    for secret in SECRETS:
        blob = secret.encode()
        assert blob not in raw.key and blob not in raw.value
        assert all(blob not in (v or b"") for _, v in raw.headers)

    def mine(records: list[dict[str, Any]]) -> dict[str, Any]:
        [record] = [r for r in records if r["key"] == mid]
        return record

    nobody = mine(tail_json(kafka, fed))
    assert nobody["encrypted"] and not nobody["verified"] and nobody["reason"] == "encrypted"
    assert nobody["clear_header"]["tlp"] == "RED" and "alert" not in nobody
    assert set(nobody["wrapped_for"]) == set(EXAMPLE["header"]["release_to"])
    assert not any(s in json.dumps(nobody) for s in SECRETS)

    named = mine(tail_json(kafka, fed, "--decrypt-key", str(fed.keys_dir / "NL-POLICE.enc.key")))
    assert named["verified"] and named["encrypted"]
    assert named["alert"]["header"]["summary"] == EXAMPLE["header"]["summary"]
    assert named["alert"]["subject_reference"] == EXAMPLE["subject_reference"]

    other = mine(tail_json(kafka, fed, "--decrypt-key", str(fed.keys_dir / "PORT-ROTTERDAM.enc.key")))
    assert other["reason"] == "not-a-recipient" and "PORT-ROTTERDAM is not a named recipient" in other["error"]

    table = run_bus("tail", TOPIC, *trust(fed), "--decrypt-key", str(fed.keys_dir / "EUROPOL.enc.key"),
                    settings=kafka, check=True)
    assert "decrypted" in table.stdout and EXAMPLE["header"]["summary"][:30] in table.stdout
    closed = run_bus("tail", TOPIC, *trust(fed), settings=kafka, check=True)
    assert "encrypted" in closed.stdout and EXAMPLE["header"]["summary"][:30] not in closed.stdout


def test_publish_refuses_what_it_cannot_encrypt_and_sends_nothing(kafka, fed, tmp_path):
    Bus(kafka).ensure_alert_topics()
    before = len(read_all(kafka, TOPIC))
    result = publish(kafka, fed)
    assert result.returncode == 2 and "TLP:RED" in result.stderr and "federation directory" in result.stderr
    assert "Traceback" not in result.stderr
    alien = dict(EXAMPLE, header=dict(EXAMPLE["header"], release_to=["FR-DOUANE"]))
    path = tmp_path / "alien.json"
    path.write_text(json.dumps(alien))
    result = publish(kafka, fed, *trust(fed), file=str(path))
    assert result.returncode == 2 and "header.release_to[0]: FR-DOUANE is not a member" in result.stderr
    assert len(read_all(kafka, TOPIC)) == before
    # --no-encrypt is the explicit way to publish it in clear
    result = publish(kafka, fed, "--no-encrypt")
    assert result.returncode == 0 and json.loads(result.stdout)["encrypted"] is False


def test_feed_reader_decrypts_with_the_members_keys(kafka, fed):
    alert = example("corruption-indicator", producer="BE-FEDPOL")
    policy = EncryptionPolicy(EncryptMode.AUTO, fed.directory)
    with Bus(kafka).publisher(fed.signers["BE-FEDPOL"], encryption=policy, create_topics=True) as publisher:
        receipt = publisher.publish(alert)

    def read(decryptor: Decryptor | None):
        with Bus(kafka).feed_reader(TOPIC, fed.directory, idle_timeout=2, decryptor=decryptor) as reader:
            [record] = [r for r in reader.records() if r.offset == receipt.offset and r.partition == receipt.partition]
        return record

    opened = read(Decryptor.of([fed.decryption_keys["BE-CUSTOMS"]]))
    assert opened.ok and opened.verified.alert == alert and opened.verified.encrypted
    assert opened.envelope is not None and opened.key == str(alert.header.message_id).encode()
    closed = read(None)
    assert not closed.ok and closed.error.reason is RejectReason.ENCRYPTED
    assert closed.envelope.routing_facts().release_to == tuple(alert.header.release_to)
    stranger = read(Decryptor.of([fed.decryption_keys["PORT-HAMBURG"]]))
    assert isinstance(stranger.error, DecryptionError) and stranger.error.reason is RejectReason.NOT_A_RECIPIENT


def test_the_demo_shows_the_red_alert_to_its_named_recipient_only(kafka, fed, unique, capsys):
    """`make demo` step 6b, on a feed of its own: Europol decrypts the TLP:RED alert; NL-CUSTOMS,
    not named, is handed the same record and refused as not-a-recipient. A feed whose RED alert
    went out in clear has nothing to show, and the step says it failed."""
    from bus.adapters.kafka import wire_headers
    from bus.core.confidential import seal_encrypted
    from bus.core.sealing import seal
    from bus.core.topology import TopicSpec
    from bus.demo import show_confidentiality
    from tests.helpers import SCHEMAS

    alert = example("corruption-indicator", producer="BE-FEDPOL")  # TLP:RED, for BE-CUSTOMS, NL-POLICE, EUROPOL
    encrypted, clear = f"feed.demo-{unique}", f"feed.demo-clear-{unique}"
    bus = Bus(kafka)
    bus.ensure_topics([TopicSpec(encrypted, 1), TopicSpec(clear, 1)])
    producer = bus.engine.producer()
    try:
        for topic, record in ((encrypted, seal_encrypted(alert, fed.signers["BE-FEDPOL"], fed.directory, SCHEMAS)),
                              (clear, seal(alert, fed.signers["BE-FEDPOL"], SCHEMAS))):
            producer.send(topic, record.value, key=record.key, headers=wire_headers(record.headers)).result(30)
    finally:
        producer.close()
    env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap, "COLUMNS": "200"}
    assert show_confidentiality(fed.keys_dir, trust(fed), reader_env=env, operator_env=env, feed=encrypted)
    shown = capsys.readouterr().out
    assert "✔ decrypted" in shown and "✘ not-a-recipient" in shown
    assert "NL-CUSTOMS is not a named recipient and cannot read it" in " ".join(shown.split())
    assert not show_confidentiality(fed.keys_dir, trust(fed), reader_env=env, operator_env=env, feed=clear)
