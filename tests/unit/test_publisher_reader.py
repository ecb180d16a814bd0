"""The publisher and the feed reader on the in-memory Kafka engine: no broker, same port.

The real broker, both engines, is in tests/integration/test_publish_tail.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bus.adapters.kafka import wire_headers
from bus.adapters.kafka.memory import ManualClock, MemoryEngine
from bus.composition import Bus
from bus.core.confidential import EncryptionPolicy, EncryptMode
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert, parse_alert
from bus.core.placement import partition_for
from bus.core.sealing import seal
from bus.errors import InvalidInput, NotAuthorized, PublishError, RejectReason
from tests.helpers import CODES, EXAMPLES, SCHEMAS, example, keyring_for

TOPIC = "alerts.suspicious-container"


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(max_wait=2.0)


@pytest.fixture
def bus(engine: MemoryEngine) -> Bus:
    bus = Bus(engine=engine)
    assert set(bus.ensure_alert_topics()) == {TOPIC, "alerts.corruption-indicator", "alerts.operation-notice"}
    return bus


@pytest.fixture
def signer() -> SigningKey:
    return SigningKey.generate("NL-CUSTOMS")


# -- publisher ----------------------------------------------------------------------------------


def container_alert(number: str) -> BaseAlert:
    data = json.loads((EXAMPLES / "suspicious-container.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created")}
    data["container_number"] = number
    return parse_alert(data, empact_codes=CODES, producer="NL-CUSTOMS")


def test_alerts_land_keyed_where_murmur2_puts_them_with_their_signed_headers(bus, engine, signer):
    alerts = [container_alert(n) for n in ("CSQU3054383", "MSCU7482106")]
    with bus.publisher(signer) as publisher:
        receipts = publisher.publish_many(alerts)
    stored = engine.records(TOPIC)
    assert len(stored) == 2 and [r.topic for r in receipts] == [TOPIC, TOPIC]
    for alert, receipt in zip(alerts, receipts, strict=True):
        [record] = [r for r in stored if (r.partition, r.offset) == (receipt.partition, receipt.offset)]
        assert record.key == alert.partition_key().encode()
        assert receipt.partition == partition_for(record.key, 6)
        assert record.header_values(b"ce_id") == [str(alert.header.message_id).encode()]
        assert record.header_values(b"ce_source") == [b"urn:epa:member:NL-CUSTOMS"]


def test_the_alert_topics_are_created_co_partitioned_once(bus, engine):
    described = engine.admin().describe_topics([TOPIC])
    assert described[TOPIC].partitions == 6
    assert bus.ensure_alert_topics() == []


def test_nothing_is_sent_when_one_alert_of_a_batch_cannot_be_sealed(bus, engine, signer):
    secret = example("corruption-indicator", tlp="RED")  # to be encrypted: no directory holds keys
    with bus.publisher(signer, encryption=EncryptionPolicy(EncryptMode.AUTO)) as publisher, \
            pytest.raises(InvalidInput):
        publisher.publish_many([example("suspicious-container"), secret])
    assert engine.records(TOPIC) == [] and engine.records("alerts.corruption-indicator") == []


def test_an_unanswered_batch_is_a_publish_error_naming_the_alerts(bus, engine, signer):
    alert = example("suspicious-container")
    with bus.publisher(signer) as publisher, engine.faults.outage(), \
            pytest.raises(PublishError, match=str(alert.header.message_id)):
        publisher.publish_many([alert], timeout=0.2)
    # "may or may not be published": the idempotent producer delivered it once the cluster came back.
    assert len(engine.records(TOPIC)) == 1


def test_a_denied_topic_is_not_authorised_naming_the_topic(engine, signer):
    Bus(engine=engine).ensure_alert_topics()
    engine.admin().upsert_scram_user("nl-customs", "pw")
    member = Bus(engine=engine.as_user("nl-customs", "pw"))
    with member.publisher(signer) as publisher, pytest.raises(NotAuthorized) as caught:
        publisher.publish(example("suspicious-container"))
    assert caught.value.resource == f"topic {TOPIC}"


# -- feed reader ----------------------------------------------------------------------------------


def test_every_record_comes_out_verified_or_with_its_reason(bus, engine, signer):
    forger = SigningKey.generate("NL-CUSTOMS")
    good = example("suspicious-container")
    with bus.publisher(signer) as publisher:
        publisher.publish(good)
    forged = seal(example("suspicious-container"), forger, SCHEMAS)
    partition = partition_for(forged.key, 6)  # the same container: after the good one
    engine.produce_raw(TOPIC, partition, forged.value, key=forged.key, headers=wire_headers(forged.headers))
    with bus.feed_reader(TOPIC, keyring_for(signer)) as reader:
        records = list(reader.records())
    assert [(r.partition, r.offset) for r in records] == [(partition, 0), (partition, 1)]
    assert [(r.ok, r.error.reason if r.error else None) for r in records] == \
        [(True, None), (False, RejectReason.UNKNOWN_KEY)]
    verified = records[0]
    assert verified.verified is not None and verified.verified.alert.header.message_id == good.header.message_id
    assert verified.header("ce_id") == str(good.header.message_id).encode()


def test_an_undecodable_record_is_reported_and_reading_goes_on(bus, engine, signer):
    bad_offset = engine.faults.inject_undecodable(TOPIC, 0)
    alert = example("suspicious-container")
    record = seal(alert, signer, SCHEMAS)
    engine.produce_raw(TOPIC, 0, record.value, key=record.key, headers=wire_headers(record.headers))
    with bus.feed_reader(TOPIC, keyring_for(signer)) as reader:
        records = list(reader.records())
    assert [(r.offset, r.ok) for r in records] == [(bad_offset, False), (bad_offset + 1, True)]
    undecodable = records[0]
    assert undecodable.error is not None and undecodable.error.reason is RejectReason.UNDECODABLE
    assert undecodable.timestamp_ms is None and undecodable.key is None
    with bus.feed_reader(TOPIC, keyring_for(signer)) as reader, pytest.raises(type(undecodable.error)):
        list(reader.alerts())


def test_null_header_values_stay_null_for_the_verifier(bus, engine, signer):
    record = seal(example("suspicious-container"), signer, SCHEMAS)
    engine.produce_raw(TOPIC, 1, record.value, key=record.key,
                       headers=(*wire_headers(record.headers), (b"x-extra", None)))
    with bus.feed_reader(TOPIC, keyring_for(signer)) as reader:
        [read] = list(reader.records())
    assert ("x-extra", None) in read.headers and read.ok


def test_since_starts_at_the_first_record_written_then(signer):
    clock = ManualClock()
    engine = MemoryEngine(clock=clock)
    bus = Bus(engine=engine)
    bus.ensure_alert_topics()
    first, second = example("suspicious-container"), example("suspicious-container")
    with bus.publisher(signer) as publisher:
        publisher.publish(first)
        middle = clock.advance(60_000)
        publisher.publish(second)
    since = datetime.fromtimestamp(middle / 1000, UTC)
    with bus.feed_reader(TOPIC, keyring_for(signer), since=since) as reader:
        ids = [r.verified.alert.header.message_id for r in reader.records() if r.verified]
    assert ids == [second.header.message_id]


def test_from_the_end_without_follow_reads_nothing_old(bus, signer):
    with bus.publisher(signer) as publisher:
        publisher.publish(example("suspicious-container"))
    with bus.feed_reader(TOPIC, keyring_for(signer), from_beginning=False) as reader:
        assert list(reader.records()) == []


def test_a_group_reader_commits_what_it_yielded(bus, engine, signer):
    with bus.publisher(signer) as publisher:
        publisher.publish_many([example("suspicious-container"), example("suspicious-container")])
    with bus.feed_reader(TOPIC, keyring_for(signer), group_id="nl-customs.tail", idle_timeout=0.5) as reader:
        assert len(list(reader.records())) == 2
    assert sum(engine.committed_offsets("nl-customs.tail").values()) == 2
    with bus.feed_reader(TOPIC, keyring_for(signer), group_id="nl-customs.tail", idle_timeout=0.5) as reader:
        assert list(reader.records()) == []


def test_a_missing_topic_is_named_and_a_denied_one_is_not_authorised(engine, signer):
    bus = Bus(engine=engine)
    with pytest.raises(InvalidInput, match=r"'feed\.nobody' does not exist"):
        bus.feed_reader("feed.nobody", keyring_for(signer))
    engine.create_topic("feed.europol", 6)
    engine.admin().upsert_scram_user("be-customs", "pw")
    member = Bus(engine=engine.as_user("be-customs", "pw"))
    with pytest.raises(NotAuthorized) as caught:
        member.feed_reader("feed.europol", keyring_for(signer))
    assert caught.value.resource == "topic feed.europol"
