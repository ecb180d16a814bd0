"""The Kafka port against a real broker, for both engines (confluent and kafka-python)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bus.adapters.kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Engine,
    Record,
    TopicPartition,
    UndecodableRecord,
    open_engine,
)
from bus.adapters.kafka.reading import ensure_topics, read_to_end
from bus.adapters.kafka.testing import HostileRecord, write_hostile
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.placement import partition_for
from bus.core.topology import TopicSpec
from bus.errors import (
    AuthenticationFailed,
    Fenced,
    KafkaOperationFailed,
    KafkaUnavailable,
    NotAuthorized,
    ProtocolMismatch,
    RecordTooLarge,
    TlsFailed,
)
from tests.helpers import wait_for

ENGINES = ["confluent", "kafka-python"]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _settings(base: KafkaSettings, engine_name: str, **changes: Any) -> KafkaSettings:
    return base.model_copy(update={"engine": engine_name, **changes})


@pytest.fixture
def engine(kafka: KafkaSettings, engine_name: str) -> Engine:
    return open_engine(_settings(kafka, engine_name))


@pytest.fixture
def topic(engine: Engine, unique: str) -> str:
    return _create(engine, f"port-{unique}", 3)


def _create(engine: Engine, name: str, partitions: int, config: tuple[tuple[str, str], ...] = ()) -> str:
    admin = engine.admin()
    try:
        assert admin.create_topics([TopicSpec(name, partitions, 1, config)]) == [name]
    finally:
        admin.close()
    return name


def _read(engine: Engine, topic: str) -> list[Any]:
    return read_to_end(engine, topic, timeout=30)


# -- records ------------------------------------------------------------------------------------


def test_round_trip_keeps_bytes_headers_keys_and_values(engine: Engine, topic: str) -> None:
    headers = ((b"bin", b"\x00\xff\xfe"), (b"empty", b""), (b"dup", b"1"), (b"dup", b"2"),
               ("naïve".encode(), b"x"))
    sent = [
        (b"key", b"value", headers),
        (None, b"no key", ()),
        (b"", b"", ()),
        (b"no value", None, ()),
    ]
    producer = engine.producer()
    try:
        deliveries = [producer.send(topic, v, key=k, headers=h, partition=0).result(15) for k, v, h in sent]
    finally:
        producer.close()
    assert [d.offset for d in deliveries] == [0, 1, 2, 3]
    got = _read(engine, topic)
    assert [(r.key, r.value, r.headers) for r in got] == sent
    assert got[0].header_values(b"dup") == [b"1", b"2"]


def test_null_header_values_and_null_records(engine: Engine, engine_name: str, topic: str,
                                             kafka: KafkaSettings) -> None:
    """confluent sends them; kafka-python cannot, and says so rather than send empty bytes.
    Both read them as null."""
    producer = engine.producer()
    try:
        if engine_name == "confluent":
            producer.send(topic, b"v", key=b"k", headers=((b"null", None),), partition=0).result(15)
            producer.send(topic, None, key=None, partition=0).result(15)
        else:
            with pytest.raises(KafkaOperationFailed, match="null value"):
                producer.send(topic, b"v", key=b"k", headers=((b"null", None),), partition=0)
            with pytest.raises(KafkaOperationFailed, match="neither key nor value"):
                producer.send(topic, None, key=None, partition=0)
            write_hostile(kafka, topic, 0, [HostileRecord(b"v", b"k", [(b"null", None)]), HostileRecord(None)])
    finally:
        producer.close()
    got = _read(engine, topic)
    assert [(r.key, r.value, r.headers) for r in got] == [(b"k", b"v", ((b"null", None),)), (None, None, ())]


def test_keys_land_where_murmur2_puts_them(engine: Engine, unique: str) -> None:
    topic = _create(engine, f"placement-{unique}", 6)
    keys = [f"MSKU{n:07d}".encode() for n in range(150)] + [uuid.uuid4().bytes for _ in range(50)]
    producer = engine.producer()
    try:
        futures = [(k, producer.send(topic, b"x", key=k)) for k in keys]
        placed = {k: f.result(15).partition for k, f in futures}
    finally:
        producer.close()
    assert placed == {k: partition_for(k, 6) for k in keys}


def test_record_over_the_client_limit_is_refused_at_once(engine: Engine, topic: str) -> None:
    producer = engine.producer()
    try:
        with pytest.raises(RecordTooLarge):
            producer.send(topic, b"x" * 2_000_000, key=b"k").result(15)
    finally:
        producer.close()


def test_record_over_the_topic_limit_is_refused_by_the_broker(engine: Engine, unique: str) -> None:
    topic = _create(engine, f"small-{unique}", 1, (("max.message.bytes", "2000"),))
    producer = engine.producer()
    try:
        with pytest.raises(RecordTooLarge):
            producer.send(topic, b"x" * 10_000, key=b"k").result(15)
    finally:
        producer.close()


def test_undecodable_header_name_becomes_an_undecodable_record_and_reading_goes_on(
        engine: Engine, kafka: KafkaSettings, topic: str) -> None:
    producer = engine.producer()
    try:
        for p in range(3):
            producer.send(topic, b"before", key=b"k", partition=p).result(15)
        first = write_hostile(kafka, topic, 1, [
            HostileRecord(b"bad", b"k", [(b"ok", b"1"), (b"\xff\xfe", None)]),
            HostileRecord(b"after in the same request", b"k", [(b"x", b"y")] * 500),
        ])
        for p in range(3):
            producer.send(topic, b"after", key=b"k", partition=p).result(15)
    finally:
        producer.close()
    got = _read(engine, topic)
    bad = [r for r in got if isinstance(r, UndecodableRecord)]
    assert [(r.partition, r.offset) for r in bad] == [(1, first)]
    assert "UTF-8" in bad[0].problem
    good = [(r.partition, r.value) for r in got if isinstance(r, Record)]
    assert good.count((1, b"after in the same request")) == 1
    assert sorted(v for _, v in good) == sorted([b"before"] * 3 + [b"after"] * 3 + [b"after in the same request"])


def test_a_group_consumer_also_moves_past_an_undecodable_record(
        engine: Engine, kafka: KafkaSettings, topic: str, unique: str) -> None:
    write_hostile(kafka, topic, 2, [HostileRecord(b"good"), HostileRecord(b"bad", None, [(b"\x80", b"")]),
                                    HostileRecord(b"good again")])
    consumer = engine.consumer(group_id=f"g-{unique}")
    seen: list[Any] = []
    try:
        consumer.subscribe([topic])
        wait_for(lambda: seen.extend(consumer.poll(0.5)) or len(seen) >= 3, 30, "three records")
    finally:
        consumer.close()
    assert [type(r).__name__ for r in seen] == ["Record", "UndecodableRecord", "Record"]
    assert [r.offset for r in seen] == [0, 1, 2]


# -- transactions -------------------------------------------------------------------------------


def test_transactions_commit_abort_and_offsets(engine: Engine, unique: str) -> None:
    source = _create(engine, f"txn-in-{unique}", 1)
    sink = _create(engine, f"txn-out-{unique}", 1)
    group = f"txn-{unique}"
    plain = engine.producer()
    for n in range(4):
        plain.send(source, f"in-{n}".encode(), key=b"k").result(15)
    plain.close()
    consumer = engine.consumer(group_id=group)
    producer = engine.transactional_producer(f"tx-{unique}")
    tp = TopicPartition(source, 0)
    try:
        consumer.assign([tp])
        producer.init(30)
        producer.begin()
        producer.send(sink, b"aborted", key=b"k")
        producer.send_offsets({tp: 2}, consumer.group_metadata(), 30)
        producer.abort(30)
        assert consumer.committed([tp]) == {tp: None}
        producer.begin()
        producer.send(sink, b"committed", key=b"k")
        producer.send_offsets({tp: 3}, consumer.group_metadata(), 30)
        producer.commit(30)
        assert consumer.committed([tp]) == {tp: 3}
    finally:
        producer.close()
        consumer.close()
    assert [r.value for r in _read(engine, sink)] == [b"committed"]


def test_read_to_end_finishes_when_only_aborted_records_remain(engine: Engine, unique: str) -> None:
    topic = _create(engine, f"aborted-{unique}", 1)
    producer = engine.transactional_producer(f"tx-{unique}")
    try:
        producer.init(30)
        producer.begin()
        producer.send(topic, b"kept", key=b"k")
        producer.commit(30)
        producer.begin()
        producer.send(topic, b"dropped", key=b"k").result(15)
        producer.abort(30)
    finally:
        producer.close()
    assert [r.value for r in read_to_end(engine, topic, timeout=20)] == [b"kept"]


def test_assigned_offsets_are_where_reading_starts_never_before(engine: Engine, unique: str) -> None:
    """A reader that starts mid-partition gets each record from there on once, and nothing
    older: restores, audits and `bus tail --since` rely on it. (With a seek right after the
    assignment, librdkafka handed out records from the start in 8 reads of 20.)"""
    topic = _create(engine, f"starts-{unique}", 6)
    producer = engine.producer()
    try:
        for i in range(1200):
            producer.send(topic, b"old", key=str(i).encode())
        producer.flush(30)
        probe = engine.consumer()
        middle = {p: probe.watermarks(TopicPartition(topic, p))[1] for p in range(6)}
        probe.close()
        for i in range(120):
            producer.send(topic, b"new", key=str(i).encode())
        producer.flush(30)
    finally:
        producer.close()
    for _ in range(5):
        records = read_to_end(engine, topic, start=middle, timeout=30)
        assert sorted((r.partition, r.offset) for r in records) == sorted(
            {(r.partition, r.offset) for r in records}), "a record was read twice"
        assert [r.value for r in records] == [b"new"] * 120


def test_a_second_producer_with_the_same_id_fences_the_first(engine: Engine, topic: str, unique: str) -> None:
    first = engine.transactional_producer(f"fence-{unique}")
    second = engine.transactional_producer(f"fence-{unique}")
    try:
        first.init(30)
        first.begin()
        first.send(topic, b"from the first", key=b"k")
        second.init(30)
        with pytest.raises(Fenced):
            first.commit(30)
    finally:
        first.close(0)
        second.close()
    assert _read(engine, topic) == []


# -- consumers ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, list[TopicPartition]]] = []

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("assigned", sorted(partitions)))

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("revoked", sorted(partitions)))

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("lost", sorted(partitions)))


def _numbers(assignment: set[TopicPartition], topic: str) -> set[int]:
    return {tp.partition for tp in assignment if tp.topic == topic}


def test_rebalance_callbacks_and_co_partitioned_topics(engine: Engine, unique: str) -> None:
    a_topic = _create(engine, f"co-a-{unique}", 4)
    b_topic = _create(engine, f"co-b-{unique}", 4)
    group = f"co-{unique}"
    first_events, second_events = Recorder(), Recorder()
    first = engine.consumer(group_id=group, session_timeout_ms=10_000)
    second = engine.consumer(group_id=group, session_timeout_ms=10_000)
    try:
        first.subscribe([a_topic, b_topic], listener=first_events)
        wait_for(lambda: first.poll(0.2) is not None and len(first.assignment()) == 8, 30, "first owns all")
        second.subscribe(pattern=rf"^co-[ab]-{unique}$", listener=second_events)

        def split() -> bool:
            first.poll(0.1)
            second.poll(0.1)
            return len(first.assignment()) == 4 and len(second.assignment()) == 4

        wait_for(split, 60, "two members with four partitions each")
        for member in (first, second):
            assert _numbers(member.assignment(), a_topic) == _numbers(member.assignment(), b_topic)
        assert any(kind == "revoked" for kind, _ in first_events.events)
        assert second_events.events[-1] == ("assigned", sorted(second.assignment()))
        second.close()
        wait_for(lambda: first.poll(0.2) is not None and len(first.assignment()) == 8, 60, "first owns all again")
        assert first_events.events[-1] == ("assigned", sorted(first.assignment()))
    finally:
        first.close()
        second.close()


def test_seek_position_watermarks_and_offsets_for_time(engine: Engine, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    producer = engine.producer()
    before = int(time.time() * 1000)
    try:
        for n in range(5):
            producer.send(topic, f"v{n}".encode(), key=b"k", partition=0).result(15)
    finally:
        producer.close()
    consumer = engine.consumer()
    try:
        consumer.assign([tp])
        assert consumer.watermarks(tp) == (0, 5)
        consumer.seek(tp, 3)
        assert consumer.position(tp) == 3
        records: list[Any] = []
        wait_for(lambda: records.extend(consumer.poll(0.5)) or len(records) >= 2, 20, "two records")
        assert [r.offset for r in records] == [3, 4]
        assert consumer.position(tp) == 5
        consumer.seek(tp, OFFSET_BEGINNING)
        first: list[Any] = []
        wait_for(lambda: first.extend(consumer.poll(0.5, max_records=1)) or first, 20, "a record")
        assert first[0].offset == 0
        consumer.seek(tp, OFFSET_END)
        assert consumer.poll(0.5) == []
        assert consumer.offsets_for_time([tp], before) == {tp: 0}
        assert consumer.offsets_for_time([tp], int(time.time() * 1000) + 60_000) == {tp: None}
        assert consumer.partitions_for(topic) == [0, 1, 2]
        assert consumer.partitions_for(f"{topic}-missing") == []
        assert topic in consumer.topics()
    finally:
        consumer.close()


# -- admin --------------------------------------------------------------------------------------


def test_admin_topics_configs_and_cluster(engine: Engine, unique: str) -> None:
    name = f"admin-{unique}"
    admin = engine.admin()
    try:
        spec = TopicSpec(name, 2, 1, (("retention.ms", "3600000"), ("cleanup.policy", "compact")))
        assert ensure_topics(admin, [spec]) == [name]
        assert ensure_topics(admin, [spec]) == []
        assert admin.describe_topics([name, f"{name}-missing"]) == {
            name: admin.describe_topics([name])[name]}
        info = admin.describe_topics([name])[name]
        assert (info.partitions, info.replication) == (2, 1)
        configs = admin.describe_configs([name])[name]
        assert configs["retention.ms"] == "3600000" and configs["cleanup.policy"] == "compact"
        assert "segment.bytes" in configs
        admin.alter_configs({name: {"retention.ms": "7200000"}})
        # KRaft applies the change through its metadata log: a describe right after may predate it.
        wait_for(lambda: admin.describe_configs([name])[name]["retention.ms"] == "7200000", 20, "the new config")
        assert admin.describe_configs([name])[name]["cleanup.policy"] == "compact"
        admin.create_partitions({name: 4})
        wait_for(lambda: admin.describe_topics([name])[name].partitions == 4, 20, "four partitions")
        cluster = admin.describe_cluster()
        assert cluster.brokers == 1 and cluster.cluster_id and cluster.controller is not None
        assert name in admin.list_topics()
        if engine.name == "kafka-python":
            with pytest.raises(ProtocolMismatch, match="authorizer"):
                admin.describe_acls()
        else:  # librdkafka answers [] when the cluster has no authorizer: no ACLs, and no denial
            assert admin.describe_acls() == []
    finally:
        admin.close()


# -- errors -------------------------------------------------------------------------------------


def test_nobody_listening_is_unavailable(engine_name: str) -> None:
    from bus.adapters.broker import free_port

    port = free_port()
    engine = open_engine(KafkaSettings(bootstrap=f"127.0.0.1:{port}", engine=engine_name))
    with pytest.raises(KafkaUnavailable, match=f"127.0.0.1:{port}"):
        engine.producer()


def test_sasl_credentials_without_a_sasl_protocol_is_a_mismatch(kafka: KafkaSettings, engine_name: str) -> None:
    with pytest.raises(ProtocolMismatch, match="SASL_PLAINTEXT"):
        open_engine(_settings(kafka, engine_name, sasl_username="nl-customs", sasl_password=SecretStr("x")))


def test_a_sasl_client_at_a_plaintext_listener_is_a_mismatch(kafka: KafkaSettings, engine_name: str) -> None:
    settings = _settings(kafka, engine_name, security_protocol="SASL_PLAINTEXT",
                         sasl_username="nl-customs", sasl_password=SecretStr("x"))
    with pytest.raises(ProtocolMismatch, match="SASL"):
        open_engine(settings).admin()


@pytest.fixture
def secure(secure_kafka: tuple[KafkaSettings, Any], engine_name: str) -> tuple[KafkaSettings, Any]:
    settings, broker = secure_kafka
    return _settings(settings, engine_name), broker


def test_wrong_password_fails_fast(secure: tuple[KafkaSettings, Any]) -> None:
    settings, _ = secure
    engine = open_engine(settings.model_copy(update={"sasl_password": SecretStr("wrong")}))
    started = time.monotonic()
    with pytest.raises(AuthenticationFailed, match="admin"):
        engine.consumer()
    assert time.monotonic() - started < 5


def test_a_plaintext_client_at_a_sasl_listener_is_a_mismatch(secure: tuple[KafkaSettings, Any]) -> None:
    settings, _ = secure
    plain = KafkaSettings(bootstrap=settings.bootstrap, engine=settings.engine)
    with pytest.raises(ProtocolMismatch, match=settings.bootstrap):
        open_engine(plain).producer()


def test_tls_with_the_wrong_ca_fails(secure: tuple[KafkaSettings, Any], tmp_path: Path) -> None:
    from bus.adapters.tls_certs import ensure_certificates

    settings, broker = secure
    other = ensure_certificates(tmp_path / "other-ca", ["127.0.0.1", "localhost"])
    wrong = settings.model_copy(update={"bootstrap": broker.tls_bootstrap, "security_protocol": "SASL_SSL",
                                        "ssl_cafile": other.ca_cert})
    with pytest.raises(TlsFailed, match="certificate"):
        open_engine(wrong).admin()
    right = wrong.model_copy(update={"ssl_cafile": broker.ca_file})
    admin = open_engine(right).admin()
    try:
        assert admin.describe_cluster().brokers == 1
    finally:
        admin.close()


def test_tls_at_a_plaintext_listener_fails(kafka: KafkaSettings, secure_kafka: tuple[KafkaSettings, Any],
                                           engine_name: str) -> None:
    _, broker = secure_kafka
    settings = _settings(kafka, engine_name, security_protocol="SSL", ssl_cafile=broker.ca_file)
    with pytest.raises(TlsFailed, match=kafka.bootstrap):
        open_engine(settings).producer()


def test_scram_users_acls_and_denials(secure: tuple[KafkaSettings, Any], unique: str) -> None:
    settings, _ = secure
    engine = open_engine(settings)
    user, password = f"port-{unique}", "s3cret-" + unique
    topic = f"secured-{unique}"
    grant = [ap.AclBinding(ap.principal(user), ap.ResourceType.TOPIC, ap.PatternType.LITERAL, topic, op)
             for op in (ap.Operation.WRITE, ap.Operation.DESCRIBE)]
    # WRITE on some other topic keeps the idempotent producer allowed to start (else: "cluster").
    other = [ap.AclBinding(ap.principal(user), ap.ResourceType.TOPIC, ap.PatternType.LITERAL, f"{topic}-other",
                           ap.Operation.WRITE)]
    admin = engine.admin()
    try:
        _create(engine, topic, 1)
        _create(engine, f"{topic}-unlisted", 1)
        admin.upsert_scram_user(user, password)
        wait_for(lambda: user in admin.scram_users(), 20, "the new user")
        admin.create_acls(grant + other)
        wait_for(lambda: set(grant + other) <= set(admin.describe_acls()), 20, "the new grants")
        member = open_engine(settings.model_copy(update={"sasl_username": user,
                                                         "sasl_password": SecretStr(password)}))
        reader = member.consumer()
        try:  # a topic it may not describe is a denial naming it, not an absence
            assert reader.partitions_for(topic) == [0]
            for denied in (f"{topic}-unlisted", f"denied-{unique}"):  # exists / does not
                with pytest.raises(NotAuthorized) as refused:
                    reader.partitions_for(denied)
                assert refused.value.resource == f"topic {denied}"
                with pytest.raises(NotAuthorized):
                    reader.watermarks(TopicPartition(denied, 0))
        finally:
            reader.close()
        with pytest.raises(NotAuthorized) as refused:
            member.admin().describe_acls()
        assert refused.value.resource == "cluster"
        producer = member.producer()
        try:
            assert producer.send(topic, b"allowed", key=b"k").result(15).topic == topic
        finally:
            producer.close()
        consumer = member.consumer(group_id=f"{user}.readers")
        try:
            consumer.subscribe([topic])
            with pytest.raises(NotAuthorized) as denied:
                wait_for(lambda: consumer.poll(0.5) and False, 20, "a denial")
            assert denied.value.resource in (f"topic {topic}", f"group {user}.readers")
        finally:
            consumer.close()
        admin.delete_acls(grant)
        wait_for(lambda: not set(grant) & set(admin.describe_acls()), 20, "the grants gone")
        producer = member.producer()
        try:
            with pytest.raises(NotAuthorized) as denied:
                producer.send(topic, b"denied", key=b"k").result(15)
            assert denied.value.resource == f"topic {topic}"
        finally:
            producer.close()
        admin.delete_acls(other)
        admin.delete_scram_user(user)
        wait_for(lambda: user not in admin.scram_users(), 20, "the user gone")
    finally:
        admin.close()

