"""Ordinary Kafka and CloudEvents tools read real wire format 1.1 records from a real broker.

Records are put on the broker by the publisher service and read back by the feed
reader (the bytes as they travelled); then each tool parses them: the CloudEvents
Python SDK's current Kafka binding (`cloudevents.core.bindings.kafka`) and its
legacy one (`cloudevents.v1.kafka`), Kafka's own console consumer with
`print.headers=true`, and kcat's JSON output.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from bus.core.sealing import unseal
from bus.services.reader import FeedRecord
from tests.helpers import CODES, SCHEMAS, example, keyring_for

TOPIC = "alerts.suspicious-container"
COVERED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "bus_keyid")


@pytest.fixture(scope="module")
def published(kafka: KafkaSettings) -> Iterator[tuple[SigningKey, list[FeedRecord], list[FeedRecord]]]:
    """(signer, our records as read back, every record on the topic) after publishing 7 alerts."""
    signer = SigningKey.generate("NL-CUSTOMS")
    alerts = [example("suspicious-container") for _ in range(7)]
    bus = Bus(kafka)
    with bus.publisher(signer, create_topics=True) as publisher:
        publisher.publish_many(alerts)
    ids = {str(a.header.message_id) for a in alerts}
    with bus.feed_reader(TOPIC, keyring_for(signer)) as reader:
        everything = list(reader.records())
    ours = [r for r in everything if (r.header("ce_id") or b"").decode() in ids]
    assert len(ours) == 7 and all(r.ok for r in ours)
    yield signer, ours, everything


def check_attributes(attrs: dict[str, object], record: FeedRecord) -> None:
    """What a CloudEvents consumer sees is exactly what the bus signed."""
    assert record.verified is not None
    h = record.verified.alert.header
    assert attrs["specversion"] == "1.0"
    assert attrs["id"] == str(h.message_id)
    assert attrs["source"] == "urn:epa:member:NL-CUSTOMS"
    assert attrs["type"] == "eu.epa.alert.suspicious-container.v1"
    assert attrs["datacontenttype"] == "application/avro"
    # bus_keyid and bus_sig are plain Kafka headers, not CloudEvents attributes (no ce_ prefix);
    # the SDK decodes every header as UTF-8 all the same, which raw 1.0 signatures broke
    assert "bus_keyid" not in attrs and "bus_sig" not in attrs
    sig = dict(record.headers)["bus_sig"]
    assert len(sig) == 86 and len(base64.urlsafe_b64decode(sig + b"==")) == 64


def test_cloudevents_sdk_current_kafka_binding(published: tuple[SigningKey, list[FeedRecord], list[FeedRecord]]
                                               ) -> None:
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    signer, ours, _ = published
    for record in ours:
        message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
        event = from_binary(message, JSONFormat())
        attrs = event.get_attributes()
        check_attributes(attrs, record)
        assert record.verified is not None
        assert attrs["time"] == record.verified.created  # parsed as a datetime, same instant
        assert attrs["partitionkey"] == record.key.decode()  # type: ignore[union-attr]
        assert event.get_data() == record.value  # Avro is not JSON: the SDK hands over the bytes
        # and what the SDK parsed still verifies as the bus record it came from
        rebuilt = [(k, v) for k, v in record.headers]
        unseal(record.key, event.get_data(), rebuilt, keyring_for(signer), SCHEMAS, CODES)


def test_cloudevents_sdk_legacy_kafka_binding(published: tuple[SigningKey, list[FeedRecord], list[FeedRecord]]
                                              ) -> None:
    from cloudevents.v1.kafka import KafkaMessage, from_binary

    _, ours, _ = published
    for record in ours:
        event = from_binary(KafkaMessage(dict(record.headers), record.key, record.value),
                            data_unmarshaller=lambda body: body)
        attrs = dict(event.get_attributes())
        check_attributes(attrs, record)
        assert attrs["time"] == dict(record.headers)["ce_time"].decode()
        assert attrs["partitionkey"] == record.key
        assert event.get_data() == record.value


def log4j_to_stderr(directory: Path) -> Path:
    path = directory / "log4j2.properties"
    path.write_text("rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = STDERR\n"
                    "appender.stderr.type = Console\nappender.stderr.name = STDERR\n"
                    "appender.stderr.target = SYSTEM_ERR\nappender.stderr.layout.type = PatternLayout\n"
                    "appender.stderr.layout.pattern = %m%n\n")
    return path


def test_kafka_console_consumer_prints_one_readable_line_per_record(
    kafka: KafkaSettings, published: tuple[SigningKey, list[FeedRecord], list[FeedRecord]], tmp_path: Path
) -> None:
    from bus.adapters.broker import ensure_jars

    if shutil.which("java") is None:
        pytest.skip("no java")
    _, ours, everything = published
    libs = ensure_jars()
    result = subprocess.run(
        ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={log4j_to_stderr(tmp_path)}", "-cp", f"{libs}/*",
         "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", kafka.bootstrap,
         "--topic", TOPIC, "--from-beginning", "--max-messages", str(len(everything)), "--timeout-ms", "30000",
         "--property", "print.headers=true", "--property", "print.key=true",
         "--property", "print.value=false"],  # the value is binary Avro: it is not text
        capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    lines = result.stdout.decode("ascii").splitlines()  # every byte printable ASCII
    assert len(lines) == len(everything)  # one line per record: no signature spills over lines
    by_id = {}
    for line in lines:
        header_text, key = line.split("\t")
        assert header_text.isprintable() and key.isprintable()
        headers = dict(item.split(":", 1) for item in header_text.split(","))
        by_id[headers["ce_id"]] = (headers, key)
    for record in ours:
        expected = {k: v.decode() for k, v in record.headers}
        headers, key = by_id[expected["ce_id"]]
        assert headers == expected and set(COVERED) < set(headers) and "bus_sig" in headers
        assert key == record.key.decode()  # type: ignore[union-attr]


def test_kcat_json_envelope_carries_readable_headers(
    kafka: KafkaSettings, published: tuple[SigningKey, list[FeedRecord], list[FeedRecord]]
) -> None:
    """`kcat -J`: one JSON envelope per record, headers as plain strings.

    The payload is binary Avro (content-type application/avro), which kcat writes
    as raw bytes inside the JSON string; so a line is JSON, but UTF-8 only up to
    the payload. Read it as Latin-1 to get the bytes back exactly.
    """
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (Debian: apt-get install kcat)")
    _, ours, everything = published
    result = subprocess.run(
        [kcat, "-C", "-b", kafka.bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-q", "-J"],
        capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.splitlines()
    assert len(lines) == len(everything)
    by_id = {}
    for line in lines:
        before_payload = line.split(b'"payload":')[0]
        before_payload.decode("ascii")  # topic, offsets, headers, key: all plain ASCII
        doc = json.loads(line.decode("latin-1"))
        headers = doc["headers"]
        pairs = dict(zip(headers[::2], headers[1::2], strict=True)) if isinstance(headers, list) else headers
        by_id[pairs["ce_id"]] = (pairs, doc)
    for record in ours:
        expected = {k: v.decode() for k, v in record.headers}
        pairs, doc = by_id[expected["ce_id"]]
        assert pairs == expected
        assert doc["key"] == record.key.decode()  # type: ignore[union-attr]
        assert doc["payload"].encode("latin-1") == record.value  # nothing lost
        assert doc["topic"] == TOPIC and datetime.fromtimestamp(doc["ts"] / 1000, UTC).year >= 2024
