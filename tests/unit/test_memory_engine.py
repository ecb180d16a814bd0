"""The in-memory engine keeps the Kafka semantics services rely on, and fails on demand.

Services are unit-tested on `MemoryEngine` instead of a broker, so each behaviour a
service relies on is pinned here: placement, offsets and headers, transactions and
read_committed, fencing, the group protocol, and the injected faults.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bus.adapters.kafka._memory.consumer import MemoryConsumer
from bus.adapters.kafka._memory.producers import MemoryTransactionalProducer
from bus.adapters.kafka.memory import ManualClock, MemoryEngine
from bus.adapters.kafka.records import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Polled,
    Record,
    TopicInfo,
    TopicPartition,
    UndecodableRecord,
)
from bus.core.acl_plan import AclBinding, Operation, PatternType, ResourceType
from bus.core.placement import partition_for
from bus.core.topology import TopicSpec
from bus.errors import (
    AuthenticationFailed,
    Fenced,
    KafkaOperationFailed,
    KafkaUnavailable,
    NotAuthorized,
    OutcomeUnknown,
    ProtocolMismatch,
    RecordTooLarge,
)
from tests.helpers import wait_for

TP = TopicPartition


class Recorder:
    """A rebalance listener that remembers every call, and what it was told it owns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []
        self.owned: set[TopicPartition] = set()

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("assigned", partitions))
        self.owned |= set(partitions)

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("revoked", partitions))
        self.owned -= set(partitions)

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("lost", partitions))
        self.owned -= set(partitions)


def engine_with(*topics: tuple[str, int], **kwargs: object) -> MemoryEngine:
    engine = MemoryEngine(**kwargs)  # type: ignore[arg-type]
    for name, partitions in topics:
        engine.create_topic(name, partitions)
    return engine


def settle(*consumers: MemoryConsumer, rounds: int = 3) -> list[Polled]:
    """Poll each consumer in turn until the group protocol has run its course (single thread)."""
    got: list[Polled] = []
    for _ in range(rounds):
        for c in consumers:
            got += c.poll(0)
    return got


def values(polled: list[Polled]) -> list[bytes | None]:
    return [r.value for r in polled if isinstance(r, Record)]


# -- topics and producing -------------------------------------------------------------------------


def test_producing_to_a_missing_topic_is_a_typed_error() -> None:
    producer = MemoryEngine().producer()
    with pytest.raises(KafkaOperationFailed, match="does not exist"):
        producer.send("alerts.nope", b"v", key=b"k")


@settings(max_examples=200)
@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=12))
def test_keyed_records_go_where_murmur2_puts_them(key: bytes, partitions: int) -> None:
    engine = engine_with(("t", partitions))
    delivery = engine.producer().send("t", b"v", key=key).result(1)
    assert delivery.partition == partition_for(key, partitions)
    assert engine.records("t", partition=delivery.partition)[0].key == key


def test_null_key_records_are_spread_round_robin() -> None:
    engine = engine_with(("t", 3))
    producer = engine.producer()
    partitions = [producer.send("t", b"%d" % i).result(1).partition for i in range(6)]
    assert sorted(partitions) == [0, 0, 1, 1, 2, 2]
    assert partitions[:3] == partitions[3:]


def test_explicit_partitions_and_offsets() -> None:
    engine = engine_with(("t", 2))
    producer = engine.producer()
    offsets = [producer.send("t", b"x", key=b"k", partition=1).result(1).offset for _ in range(3)]
    assert offsets == [0, 1, 2]
    assert [r.offset for r in engine.records("t", partition=1)] == [0, 1, 2]
    with pytest.raises(KafkaOperationFailed, match="no partition 2"):
        producer.send("t", b"x", partition=2)


def test_timestamps_come_from_the_injected_clock() -> None:
    clock = ManualClock(1_000_000)
    engine = engine_with(("t", 1), clock=clock)
    producer = engine.producer()
    producer.send("t", b"a").result(1)
    clock.advance(5_000)
    producer.send("t", b"b").result(1)
    assert [r.timestamp_ms for r in engine.records("t")] == [1_000_000, 1_005_000]


def test_headers_keys_and_values_are_kept_exactly() -> None:
    engine = engine_with(("t", 1))
    headers = ((b"ce_id", b"1"), (b"\xff\xfe not utf-8", None), (b"ce_id", b""), (b"", b"\x00"))
    engine.producer().send("t", None, key=None, headers=headers).result(1)
    [record] = engine.records("t")
    assert record.headers == headers
    assert record.key is None and record.value is None
    assert record.header_values(b"ce_id") == [b"1", b""]


def test_a_record_over_the_producer_limit_is_refused_at_send() -> None:
    engine = engine_with(("t", 1), max_record_bytes=100)
    producer = engine.producer()
    with pytest.raises(RecordTooLarge, match="102 bytes"):
        producer.send("t", b"v" * 90, key=b"k" * 5, headers=((b"h", b"123456"),))
    producer.send("t", b"v" * 100).result(1)
    assert len(engine.records("t")) == 1


def test_the_topics_own_size_limit_fails_the_delivery() -> None:
    engine = MemoryEngine()
    engine.create_topic("small", 1, config={"max.message.bytes": "10"})
    future = engine.producer().send("small", b"x" * 11)
    with pytest.raises(RecordTooLarge, match=r"max\.message\.bytes=10"):
        future.result(1)
    assert engine.records("small") == []


def test_acks_all_needs_enough_replicas() -> None:
    engine = MemoryEngine(brokers=3)
    engine.create_topic("t", 1, replication=1, config={"min.insync.replicas": "2"})
    with pytest.raises(KafkaOperationFailed, match="not enough replicas"):
        engine.producer().send("t", b"x").result(1)


def test_producers_on_many_threads_lose_and_double_nothing() -> None:
    engine = engine_with(("t", 3))
    producer = engine.producer()

    def publish(thread: int) -> None:
        for i in range(200):
            producer.send("t", b"%d-%d" % (thread, i), key=b"%d" % i)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    producer.flush(1)
    stored = [r.value or b"" for r in engine.records("t")]
    assert sorted(stored) == sorted(b"%d-%d" % (n, i) for n in range(4) for i in range(200))
    for p in range(3):
        offsets = [r.offset for r in engine.records("t", partition=p)]
        assert offsets == list(range(len(offsets)))


def test_a_closed_producer_refuses_to_send() -> None:
    engine = engine_with(("t", 1))
    producer = engine.producer()
    producer.close()
    producer.close()  # never raises
    with pytest.raises(KafkaOperationFailed, match="closed"):
        producer.send("t", b"x")


# -- transactions ---------------------------------------------------------------------------------


def transactional(engine: MemoryEngine, tid: str = "tx-1") -> MemoryTransactionalProducer:
    producer = engine.transactional_producer(tid)
    producer.init(1)
    return producer


def test_read_committed_sees_committed_records_only_and_stops_at_the_last_stable_offset() -> None:
    engine = engine_with(("t", 1))
    tx = engine.transactional_producer("tx")
    tx.init(1)
    plain = engine.producer()
    committed_reader = engine.consumer()
    everything = engine.consumer(read_committed=False)
    for c in (committed_reader, everything):
        c.assign([TP("t", 0)])

    plain.send("t", b"before").result(1)
    tx.begin()
    tx.send("t", b"in-txn").result(1)
    plain.send("t", b"after-open").result(1)  # behind the open transaction: not stable yet
    assert values(committed_reader.poll(0)) == [b"before"]
    assert committed_reader.watermarks(TP("t", 0)) == (0, 1)
    assert everything.watermarks(TP("t", 0)) == (0, 3)
    assert values(everything.poll(0)) == [b"before", b"in-txn", b"after-open"]

    tx.abort(1)
    assert values(committed_reader.poll(0)) == [b"after-open"]
    tx.begin()
    tx.send("t", b"kept").result(1)
    tx.commit(1)
    assert values(committed_reader.poll(0)) == [b"kept"]
    assert engine.records("t") == [r for r in engine.records("t", read_committed=False) if r.value != b"in-txn"]
    # Markers take offsets, as on a real broker: 4 records + 2 markers.
    assert committed_reader.position(TP("t", 0)) == 6
    assert committed_reader.watermarks(TP("t", 0)) == (0, 6)


def test_offsets_sent_in_a_transaction_apply_only_when_it_commits() -> None:
    engine = engine_with(("in", 1), ("out", 1))
    engine.producer().send("in", b"a").result(1)
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["in"])
    [record] = consumer.poll(0)
    tx = engine.transactional_producer("tx")
    tx.init(1)
    tx.begin()
    tx.send("out", b"A")
    tx.send_offsets({TP("in", 0): record.offset + 1}, consumer.group_metadata(), 1)
    tx.abort(1)
    assert engine.committed_offsets("g") == {}
    tx.begin()
    tx.send("out", b"A")
    tx.send_offsets({TP("in", 0): record.offset + 1}, consumer.group_metadata(), 1)
    tx.commit(1)
    assert engine.committed_offsets("g") == {TP("in", 0): 1}
    assert consumer.committed([TP("in", 0)]) == {TP("in", 0): 1}


def test_init_fences_the_older_producer_and_aborts_its_transaction() -> None:
    engine = engine_with(("t", 2))
    old = engine.transactional_producer("router-1")
    old.init(1)
    old.begin()
    old.send("t", b"zombie", key=b"k").result(1)
    new = engine.transactional_producer("router-1")
    new.init(1)
    for call in (lambda: old.send("t", b"x"), lambda: old.commit(1), lambda: old.abort(1), old.begin):
        with pytest.raises(Fenced):
            call()
    new.begin()
    new.send("t", b"fresh", key=b"k").result(1)
    new.commit(1)
    assert values(list(engine.records("t"))) == [b"fresh"]
    old.close()  # never raises, even fenced


def test_transaction_protocol_misuse_is_refused() -> None:
    engine = engine_with(("t", 1))
    tx = engine.transactional_producer("tx")
    with pytest.raises(KafkaOperationFailed, match="init"):
        tx.begin()
    tx.init(1)
    with pytest.raises(KafkaOperationFailed, match="already"):
        tx.init(1)
    with pytest.raises(KafkaOperationFailed, match="begin"):
        tx.send("t", b"x")
    with pytest.raises(KafkaOperationFailed, match="no transaction"):
        tx.abort(1)
    tx.begin()
    with pytest.raises(KafkaOperationFailed, match="already in progress"):
        tx.begin()
    with pytest.raises(KafkaOperationFailed, match="maximum"):
        engine.transactional_producer("long", transaction_timeout_ms=3_600_000).init(1)


def test_a_transaction_open_past_its_timeout_is_aborted_by_the_coordinator() -> None:
    clock = ManualClock()
    engine = engine_with(("t", 1), clock=clock)
    tx = engine.transactional_producer("tx", transaction_timeout_ms=10_000)
    tx.init(1)
    tx.begin()
    tx.send("t", b"late").result(1)
    reader = engine.consumer()
    reader.assign([TP("t", 0)])
    assert reader.watermarks(TP("t", 0)) == (0, 0)  # held back by the open transaction
    clock.advance(10_001)
    assert reader.watermarks(TP("t", 0)) == (0, 2)
    with pytest.raises(KafkaOperationFailed, match="aborted by the coordinator"):
        tx.commit(1)
    tx.abort(1)
    tx.begin()
    tx.send("t", b"on time").result(1)
    tx.commit(1)
    assert values(reader.poll(0)) == [b"on time"]


_txn_op = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("commit"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("abort"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("plain"), st.just(0), st.integers(0, 1)),
    st.tuples(st.just("poll"), st.just(0), st.just(0)),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_txn_op, max_size=60))
def test_read_committed_sees_exactly_the_committed_records_in_order(ops: list[tuple[str, int, int]]) -> None:
    """Any interleaving of transactional sends, commits, aborts and plain sends over two partitions."""
    engine = engine_with(("t", 2))
    producers = [engine.transactional_producer(f"tx-{i}") for i in range(3)]
    for p in producers:
        p.init(1)
    plain = engine.producer()
    reader = engine.consumer()
    reader.assign([TP("t", 0), TP("t", 1)])
    log: dict[int, list[tuple[bytes, int | None]]] = {0: [], 1: []}  # per partition: (value, txn) in write order
    open_txn: dict[int, int] = {}  # producer -> its current transaction number
    outcome: dict[int, bool] = {}
    seen: list[Polled] = []
    for n, (op, who, partition) in enumerate(ops):
        value = b"%d" % n
        if op == "send":
            if who not in open_txn:
                producers[who].begin()
                open_txn[who] = n
            producers[who].send("t", value, partition=partition).result(1)
            log[partition].append((value, open_txn[who]))
        elif op in ("commit", "abort") and who in open_txn:
            getattr(producers[who], op)(1)
            outcome[open_txn.pop(who)] = op == "commit"
        elif op == "plain":
            plain.send("t", value, partition=partition).result(1)
            log[partition].append((value, None))
        elif op == "poll":
            seen += reader.poll(0)
    seen += reader.poll(0)
    for partition, written in log.items():
        stable = [(v, t) for v, t in written]
        first_open = next((i for i, (_, t) in enumerate(written) if t is not None and t not in outcome), None)
        if first_open is not None:
            stable = written[:first_open]
        expected = [v for v, t in stable if t is None or outcome[t]]
        assert [r.value for r in seen if isinstance(r, Record) and r.partition == partition] == expected
        assert [v for v, _ in written] == [r.value for r in engine.records("t", partition=partition,
                                                                            read_committed=False)]


# -- faults ---------------------------------------------------------------------------------------


def test_a_lost_commit_request_commits_nothing_and_the_next_init_aborts_it() -> None:
    engine = engine_with(("in", 1), ("out", 1))
    engine.producer().send("in", b"a").result(1)
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["in"])
    consumer.poll(0)
    tx = engine.transactional_producer("tx")
    tx.init(1)
    tx.begin()
    tx.send("out", b"A").result(1)
    tx.send_offsets({TP("in", 0): 1}, consumer.group_metadata(), 1)
    engine.faults.next_commit_unknown(applied=False)
    with pytest.raises(OutcomeUnknown):
        tx.commit(1)
    with pytest.raises(KafkaOperationFailed, match="unknown outcome"):
        tx.abort(1)  # as with a real client: retry the commit or start over
    engine.transactional_producer("tx").init(1)
    assert engine.records("out") == [] and engine.committed_offsets("g") == {}


def test_a_lost_commit_answer_commits_and_a_retry_succeeds() -> None:
    engine = engine_with(("out", 1))
    tx = engine.transactional_producer("tx")
    tx.init(1)
    tx.begin()
    tx.send("out", b"A").result(1)
    engine.faults.next_commit_unknown(applied=True, transactional_id="tx")
    with pytest.raises(OutcomeUnknown):
        tx.commit(1)
    assert values(list(engine.records("out"))) == [b"A"]
    with pytest.raises(KafkaOperationFailed):
        tx.begin()
    tx.commit(1)  # the retry gets the answer
    tx.begin()
    tx.send("out", b"B").result(1)
    tx.commit(1)
    assert values(list(engine.records("out"))) == [b"A", b"B"]


def test_commit_faults_target_one_transactional_id() -> None:
    engine = engine_with(("out", 1))
    other, target = transactional(engine, "other"), transactional(engine, "target")
    engine.faults.next_commit_unknown(transactional_id="target")
    for tx in (other, target):
        tx.begin()
        tx.send("out", b"x")
    other.commit(1)
    with pytest.raises(OutcomeUnknown):
        target.commit(1)


def test_failed_sends_make_the_transaction_abortable_so_a_batch_can_be_bisected() -> None:
    engine = engine_with(("dlq", 1))
    engine.faults.fail_sends("dlq", RecordTooLarge, when=lambda r: r.key == b"poison")
    tx = transactional(engine)
    tx.begin()
    good = tx.send("dlq", b"ok", key=b"fine")
    bad = tx.send("dlq", b"bad", key=b"poison")
    assert good.result(1).offset == 0
    with pytest.raises(RecordTooLarge):
        bad.result(1)
    with pytest.raises(RecordTooLarge, match="must be aborted"):
        tx.send("dlq", b"more")
    with pytest.raises(RecordTooLarge, match="must be aborted"):
        tx.commit(1)
    tx.abort(1)
    tx.begin()
    tx.send("dlq", b"ok", key=b"fine")
    tx.commit(1)
    assert values(list(engine.records("dlq"))) == [b"ok"]


def test_send_faults_can_be_counted_and_cleared() -> None:
    engine = engine_with(("t", 1))
    producer = engine.producer()
    engine.faults.fail_sends("t", times=2)
    outcomes = []
    for _ in range(3):
        try:
            producer.send("t", b"x").result(1)
            outcomes.append("stored")
        except KafkaOperationFailed:
            outcomes.append("failed")
    assert outcomes == ["failed", "failed", "stored"]
    engine.faults.fail_sends("t")
    engine.faults.clear()
    producer.send("t", b"x").result(1)


def test_an_outage_holds_sends_until_the_cluster_comes_back() -> None:
    engine = engine_with(("t", 1), max_wait=0.05)
    producer = engine.producer()
    producer.send("t", b"before").result(1)
    engine.faults.go_down()
    futures = [producer.send("t", b"%d" % i) for i in range(3)]
    with pytest.raises(OutcomeUnknown):
        futures[0].result(30)  # capped by max_wait: the test does not wait 30 s
    with pytest.raises(OutcomeUnknown):
        producer.flush(30)
    engine.faults.come_back()
    assert [f.result(0) .offset for f in futures] == [1, 2, 3]
    producer.flush(1)


def test_during_an_outage_each_call_fails_the_way_a_real_client_does() -> None:
    engine = engine_with(("t", 1), max_wait=0.02)
    engine.producer().send("t", b"x").result(1)
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["t"])
    assert len(consumer.poll(0)) == 1
    tx = transactional(engine)
    tx.begin()
    tx.send("t", b"y")
    with engine.faults.outage():
        assert consumer.poll(0.01) == []
        with pytest.raises(OutcomeUnknown):
            consumer.commit({TP("t", 0): 1})
        with pytest.raises(KafkaUnavailable):
            consumer.watermarks(TP("t", 0))
        with pytest.raises(KafkaUnavailable):
            engine.transactional_producer("other").init(5)
        with pytest.raises(KafkaUnavailable):
            engine.admin().list_topics()
        with pytest.raises(OutcomeUnknown):
            tx.commit(5)
    tx.commit(1)  # retried once the cluster is back: it completes
    assert values(consumer.poll(0)) == [b"y"]


def test_closing_a_producer_during_an_outage_answers_every_pending_send() -> None:
    engine = engine_with(("t", 1), max_wait=0.01)
    producer = engine.producer()
    engine.faults.go_down()
    future = producer.send("t", b"x")
    producer.close(timeout=5)
    assert future.done()
    with pytest.raises(OutcomeUnknown, match="closed"):
        future.result(0)
    engine.faults.come_back()
    assert engine.records("t") == []


def test_records_held_by_an_outage_are_refused_if_their_transaction_ends_first() -> None:
    clock = ManualClock()
    engine = engine_with(("t", 1), clock=clock)
    tx = engine.transactional_producer("tx", transaction_timeout_ms=1_000)
    tx.init(1)
    tx.begin()
    engine.faults.go_down()
    future = tx.send("t", b"held")
    clock.advance(1_001)
    assert engine.records("t", read_committed=False) == []  # the coordinator aborts the transaction
    with pytest.raises(KafkaOperationFailed, match="transaction ended"):
        future.result(0)
    engine.faults.come_back()
    assert engine.records("t", read_committed=False) == []


def test_a_call_blocked_by_an_outage_completes_when_the_cluster_returns() -> None:
    engine = engine_with(("t", 1))
    engine.faults.go_down()
    future = engine.producer().send("t", b"x")
    threading.Timer(0.05, engine.faults.come_back).start()
    assert future.result(5).offset == 0


def test_an_undecodable_record_is_returned_by_its_coordinates_and_skipped() -> None:
    engine = engine_with(("alerts.x", 2))
    producer = engine.producer()
    producer.send("alerts.x", b"a", partition=1).result(1)
    offset = engine.faults.inject_undecodable("alerts.x", 1, problem="header name is not UTF-8")
    producer.send("alerts.x", b"b", partition=1).result(1)
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(pattern=r"^alerts\..+")
    polled = consumer.poll(0)
    assert polled[1] == UndecodableRecord("alerts.x", 1, offset, "header name is not UTF-8")
    assert [p.offset for p in polled] == [0, 1, 2]
    assert consumer.position(TP("alerts.x", 1)) == 3
    assert engine.records("alerts.x") == [p for p in polled if isinstance(p, Record)]


def test_an_expired_member_learns_at_its_next_poll_and_its_commits_are_refused() -> None:
    engine = engine_with(("in", 2), ("out", 1))
    listener = Recorder()
    zombie = engine.consumer(group_id="g")
    zombie.subscribe(["in"], listener=listener)
    settle(zombie)
    other = engine.consumer(group_id="g")
    other.subscribe(["in"])
    settle(other)  # the group waits for the zombie to rejoin, up to the rebalance timeout
    engine.faults.expire_member(zombie)
    settle(other)
    assert other.assignment() == {TP("in", 0), TP("in", 1)}
    with pytest.raises(KafkaOperationFailed, match="no longer a member"):
        zombie.commit({TP("in", 0): 0})
    tx = transactional(engine)
    tx.begin()
    tx.send("out", b"x")
    with pytest.raises(KafkaOperationFailed, match="no longer a member"):
        tx.send_offsets({TP("in", 0): 0}, zombie.group_metadata(), 1)
    with pytest.raises(KafkaOperationFailed, match="must be aborted"):
        tx.commit(1)
    zombie.poll(0)
    assert listener.calls == [("assigned", [TP("in", 0), TP("in", 1)]), ("lost", [TP("in", 0), TP("in", 1)])]
    settle(zombie, other)
    assert zombie.assignment() | other.assignment() == {TP("in", 0), TP("in", 1)}
    assert not zombie.assignment() & other.assignment()


# -- consumer groups ------------------------------------------------------------------------------


def test_a_single_member_gets_everything_inside_poll() -> None:
    engine = engine_with(("a", 3))
    listener = Recorder()
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["a"], listener=listener)
    assert listener.calls == []  # nothing happens before poll
    consumer.poll(0)
    assert listener.calls == [("assigned", [TP("a", 0), TP("a", 1), TP("a", 2)])]


def test_range_assignment_gives_each_member_the_same_numbers_of_co_partitioned_topics() -> None:
    engine = engine_with(("alerts.a", 6), ("alerts.b", 6), ("acks", 6))
    members = [engine.consumer(group_id="router", group_instance_id=f"r{i}") for i in range(4)]
    for m in members:
        m.subscribe(pattern=r"^(alerts\..+|acks)$")
    settle(*members)
    numbers = []
    for m in members:
        by_topic = defaultdict(set)
        for tp in m.assignment():
            by_topic[tp.topic].add(tp.partition)
        assert len({frozenset(s) for s in by_topic.values()}) == 1, by_topic
        assert set(by_topic) == {"alerts.a", "alerts.b", "acks"}
        numbers.append(sorted(by_topic["acks"]))
    assert sorted(numbers) == [[0, 1], [2, 3], [4], [5]]


def test_a_joining_member_never_shares_a_partition_with_an_old_one() -> None:
    engine = engine_with(("t", 2))
    first_listener, second_listener = Recorder(), Recorder()
    first = engine.consumer(group_id="g")
    first.subscribe(["t"], listener=first_listener)
    first.poll(0)
    second = engine.consumer(group_id="g")
    second.subscribe(["t"], listener=second_listener)
    second.poll(0)
    assert second.assignment() == set()  # the first has not given anything back yet
    first.poll(0)
    second.poll(0)
    assert first_listener.calls == [("assigned", [TP("t", 0), TP("t", 1)]), ("revoked", [TP("t", 0), TP("t", 1)]),
                                    ("assigned", [TP("t", 0)])]
    assert second_listener.calls == [("assigned", [TP("t", 1)])]


def test_partitions_move_only_after_on_revoked_returns() -> None:
    engine = engine_with(("t", 2))
    second = engine.consumer(group_id="g")
    observed: list[set[TopicPartition]] = []

    class SlowToLetGo(Recorder):
        def on_revoked(self, partitions: list[TopicPartition]) -> None:
            second.poll(0)  # another member polls while we still hold the partitions
            observed.append(second.assignment())
            super().on_revoked(partitions)

    first = engine.consumer(group_id="g")
    first.subscribe(["t"], listener=SlowToLetGo())
    first.poll(0)
    second.subscribe(["t"])
    second.poll(0)
    first.poll(0)
    assert observed == [set()]
    second.poll(0)
    assert second.assignment() == {TP("t", 1)}


def test_a_member_leaving_hands_its_partitions_over() -> None:
    engine = engine_with(("t", 2))
    a, b = engine.consumer(group_id="g"), engine.consumer(group_id="g")
    for c in (a, b):
        c.subscribe(["t"])
    settle(a, b)
    assert len(a.assignment()) == len(b.assignment()) == 1
    a.close()
    settle(b)
    assert b.assignment() == {TP("t", 0), TP("t", 1)}
    with pytest.raises(KafkaOperationFailed, match="closed"):
        a.poll(0)


def test_a_regex_subscription_picks_up_new_topics() -> None:
    engine = engine_with(("alerts.a", 1), ("other", 1))
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(pattern=r"^alerts\..+")
    consumer.poll(0)
    assert consumer.assignment() == {TP("alerts.a", 0)}
    engine.create_topic("alerts.b", 2)
    engine.producer().send("alerts.b", b"new", partition=1).result(1)
    assert values(consumer.poll(0)) == [b"new"]
    assert consumer.assignment() == {TP("alerts.a", 0), TP("alerts.b", 0), TP("alerts.b", 1)}


def test_new_partitions_are_assigned_too() -> None:
    engine = engine_with(("t", 1))
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["t"])
    consumer.poll(0)
    engine.admin().create_partitions({"t": 3})
    consumer.poll(0)
    assert consumer.assignment() == {TP("t", 0), TP("t", 1), TP("t", 2)}


def test_a_restarted_static_member_gets_its_partitions_back_without_disturbing_others() -> None:
    engine = engine_with(("t", 4))
    others_listener = Recorder()
    static = engine.consumer(group_id="g", group_instance_id="router-a")
    other = engine.consumer(group_id="g", group_instance_id="router-b")
    static.subscribe(["t"])
    other.subscribe(["t"], listener=others_listener)
    settle(static, other)
    held = static.assignment()
    calls_before = list(others_listener.calls)
    static.close()
    settle(other)
    restarted_listener = Recorder()
    restarted = engine.consumer(group_id="g", group_instance_id="router-a")
    restarted.subscribe(["t"], listener=restarted_listener)
    settle(restarted, other)
    assert restarted_listener.calls == [("assigned", sorted(held))]
    assert others_listener.calls == calls_before


def test_a_closed_static_member_keeps_its_partitions_until_its_session_times_out() -> None:
    clock = ManualClock()
    engine = engine_with(("t", 2), clock=clock)
    static = engine.consumer(group_id="g", group_instance_id="a", session_timeout_ms=10_000)
    other = engine.consumer(group_id="g")
    for c in (static, other):
        c.subscribe(["t"])
    settle(static, other)
    static.close()
    settle(other)
    assert len(other.assignment()) == 1
    clock.advance(10_000)
    settle(other)
    assert other.assignment() == {TP("t", 0), TP("t", 1)}


def test_a_second_live_member_with_the_same_instance_id_fences_the_first() -> None:
    engine = engine_with(("t", 1))
    first = engine.consumer(group_id="g", group_instance_id="router-1")
    first.subscribe(["t"])
    first.poll(0)
    metadata = first.group_metadata()
    duplicate = engine.consumer(group_id="g", group_instance_id="router-1")
    duplicate.subscribe(["t"])
    duplicate.poll(0)
    assert duplicate.assignment() == {TP("t", 0)}
    with pytest.raises(Fenced):
        first.poll(0)
    with pytest.raises(Fenced):
        first.commit({TP("t", 0): 0})
    tx = transactional(engine)
    tx.begin()
    with pytest.raises(Fenced):
        tx.send_offsets({TP("t", 0): 0}, metadata, 1)
    first.close()


def test_consumers_resume_from_committed_offsets_or_the_reset_rule() -> None:
    engine = engine_with(("t", 1))
    producer = engine.producer()
    for v in (b"a", b"b", b"c"):
        producer.send("t", v).result(1)
    first = engine.consumer(group_id="g", max_poll_records=2)
    first.subscribe(["t"])
    assert values(first.poll(0)) == [b"a", b"b"]
    first.commit({TP("t", 0): 2})
    first.close()
    resumed = engine.consumer(group_id="g")
    resumed.subscribe(["t"])
    assert values(resumed.poll(0)) == [b"c"]
    latest = engine.consumer(group_id="new", from_beginning=False)
    latest.subscribe(["t"])
    assert latest.poll(0) == []
    producer.send("t", b"d").result(1)
    assert values(latest.poll(0)) == [b"d"]
    earliest = engine.consumer(group_id="other")
    earliest.subscribe(["t"])
    assert values(earliest.poll(0)) == [b"a", b"b", b"c", b"d"]


def test_commits_from_a_stale_generation_are_refused() -> None:
    engine = engine_with(("t", 2))
    a = engine.consumer(group_id="g")
    a.subscribe(["t"])
    a.poll(0)
    stale = a.group_metadata()
    b = engine.consumer(group_id="g")
    b.subscribe(["t"])
    settle(b, a, b)
    a.commit({TP("t", 0): 0})  # current generation: fine
    tx = transactional(engine)
    tx.begin()
    with pytest.raises(KafkaOperationFailed, match="rebalanced"):
        tx.send_offsets({TP("t", 0): 0}, stale, 1)


def test_a_new_owner_waits_for_offsets_held_by_an_open_transaction() -> None:
    engine = engine_with(("in", 1), ("out", 1))
    producer = engine.producer()
    for v in (b"a", b"b"):
        producer.send("in", v).result(1)
    owner = engine.consumer(group_id="g")
    owner.subscribe(["in"])
    owner.poll(0)
    tx = transactional(engine)
    tx.begin()
    tx.send_offsets({TP("in", 0): 2}, owner.group_metadata(), 1)
    engine.faults.expire_member(owner)
    successor = engine.consumer(group_id="g")
    successor.subscribe(["in"])
    assert successor.poll(0) == []  # the committed offset is not stable yet
    assert successor.assignment() == {TP("in", 0)}
    tx.commit(1)  # the metadata was valid when sent, so it commits
    assert successor.poll(0) == []
    assert successor.position(TP("in", 0)) == 2


def test_manual_assignment_needs_no_group() -> None:
    engine = engine_with(("t", 2))
    engine.producer().send("t", b"x", partition=1).result(1)
    reader = engine.consumer()
    reader.assign([TP("t", 1)])
    assert reader.assignment() == {TP("t", 1)}
    assert values(reader.poll(0)) == [b"x"]
    with pytest.raises(KafkaOperationFailed):
        reader.subscribe(["t"])
    with pytest.raises(KafkaOperationFailed):
        reader.commit({TP("t", 1): 1})


def test_a_member_may_commit_its_offsets_in_on_revoked() -> None:
    engine = engine_with(("t", 2))
    engine.producer().send("t", b"x", partition=0).result(1)
    first = engine.consumer(group_id="g")

    class CommitOnRevoke(Recorder):
        def on_revoked(self, partitions: list[TopicPartition]) -> None:
            first.commit({tp: first.position(tp) for tp in partitions})
            super().on_revoked(partitions)

    first.subscribe(["t"], listener=CommitOnRevoke())
    assert values(first.poll(0)) == [b"x"]
    second = engine.consumer(group_id="g")
    second.subscribe(["t"])
    settle(second, first, second)
    assert engine.committed_offsets("g") == {TP("t", 0): 1, TP("t", 1): 0}


def test_members_on_their_own_threads_read_each_record_once_through_rebalances() -> None:
    """Commit after each poll: eager rebalances hand over exactly at the committed offsets."""
    engine = engine_with(("t", 4))
    producer = engine.producer()
    total = 400
    consumed: list[bytes] = []
    owners: dict[TopicPartition, int] = {}
    guard = threading.Lock()
    overlaps: list[TopicPartition] = []
    stop = threading.Event()

    class Owner(Recorder):
        def __init__(self, me: int) -> None:
            super().__init__()
            self.me = me

        def on_assigned(self, partitions: list[TopicPartition]) -> None:
            with guard:
                overlaps.extend(tp for tp in partitions if owners.get(tp, self.me) != self.me)
                owners.update(dict.fromkeys(partitions, self.me))
            super().on_assigned(partitions)

        def on_revoked(self, partitions: list[TopicPartition]) -> None:
            with guard:
                for tp in partitions:
                    owners.pop(tp, None)
            super().on_revoked(partitions)

    errors: list[BaseException] = []

    def member(me: int) -> None:
        consumer = engine.consumer(group_id="g", max_poll_records=7)
        consumer.subscribe(["t"], listener=Owner(me))
        try:
            while not stop.is_set():
                batch = consumer.poll(0.01)
                with guard:
                    consumed.extend(r.value or b"" for r in batch if isinstance(r, Record))
                consumer.commit({TP(r.topic, r.partition): r.offset + 1 for r in batch})
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)
        with guard:  # close calls no listener: hand over by hand
            for tp in consumer.assignment():
                owners.pop(tp, None)
        consumer.close()

    threads = [threading.Thread(target=member, args=(0,))]
    threads[0].start()
    for i in range(total):
        producer.send("t", b"%d" % i, key=b"%d" % i)
        if i == total // 3:
            threads.append(threading.Thread(target=member, args=(1,)))
            threads[-1].start()
        if i == 2 * total // 3:
            threads.append(threading.Thread(target=member, args=(2,)))
            threads[-1].start()
    wait_for(lambda: errors or len(consumed) >= total, timeout=20, what="every record consumed")
    stop.set()
    for t in threads:
        t.join(5)
    assert errors == []
    assert sorted(consumed) == sorted(b"%d" % i for i in range(total))
    assert overlaps == []


def test_subscribing_again_rebalances_onto_the_new_topics() -> None:
    engine = engine_with(("a", 1), ("b", 1))
    listener = Recorder()
    consumer = engine.consumer(group_id="g")
    consumer.subscribe(["a"], listener=listener)
    consumer.poll(0)
    consumer.subscribe(["a", "b"], listener=listener)
    consumer.poll(0)
    assert listener.calls[1:] == [("revoked", [TP("a", 0)]), ("assigned", [TP("a", 0), TP("b", 0)])]


def test_a_consumer_outside_the_group_commits_only_while_the_group_is_empty() -> None:
    engine = engine_with(("t", 1))
    outsider = engine.consumer(group_id="g")
    outsider.assign([TP("t", 0)])
    outsider.commit({TP("t", 0): 0})
    member = engine.consumer(group_id="g")
    member.subscribe(["t"])
    member.poll(0)
    with pytest.raises(KafkaOperationFailed, match="active members"):
        outsider.commit({TP("t", 0): 1})
    member.close()
    outsider.commit({TP("t", 0): 1})
    assert engine.committed_offsets("g") == {TP("t", 0): 1}


class GroupMachine(RuleBasedStateMachine):
    """Members join, poll, close and expire in any order; a partition never has two readers."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.engine = engine_with(("alerts.a", 3), ("alerts.b", 3), clock=self.clock)
        self.live: list[tuple[MemoryConsumer, Recorder]] = []
        self.unaware: set[int] = set()  # expired, not yet told (a zombie, as with a real broker)
        self.next_instance = 0

    @initialize()
    def first_member(self) -> None:
        self.join(static=False)

    @rule(static=st.booleans())
    def join(self, static: bool) -> None:
        self.next_instance += 1
        consumer = self.engine.consumer(group_id="g", session_timeout_ms=1_000,
                                        group_instance_id=f"i{self.next_instance}" if static else None)
        listener = Recorder()
        consumer.subscribe(pattern=r"^alerts\.", listener=listener)
        self.live.append((consumer, listener))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def poll(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.live) - 1))
        consumer, listener = self.live[i]
        consumer.poll(0)
        self.unaware.discard(id(consumer))
        assert listener.owned == consumer.assignment()

    @precondition(lambda self: len(self.live) > 1)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        consumer, _ = self.live.pop(data.draw(st.integers(0, len(self.live) - 1)))
        consumer.close()
        self.unaware.discard(id(consumer))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        consumer, _ = self.live[data.draw(st.integers(0, len(self.live) - 1))]
        if consumer.member_id is not None:
            self.engine.faults.expire_member(consumer)
            self.unaware.add(id(consumer))

    @rule()
    def new_topic(self) -> None:
        self.engine.create_topic(f"alerts.n{len(self.engine.admin().list_topics())}", 2)

    @rule()
    def settle_everything(self) -> None:
        self.clock.advance(1_001)  # closed static members' sessions end
        settle(*(c for c, _ in self.live))
        self.unaware.clear()
        owned = [c.assignment() for c, _ in self.live]
        everything = {TP(t, p) for t in self.engine.admin().list_topics()
                      for p in range(self.engine.admin().describe_topics([t])[t].partitions)}
        assert set().union(*owned) == everything

    @invariant()
    def no_partition_has_two_readers(self) -> None:
        seen: set[TopicPartition] = set()
        for consumer, listener in self.live:
            if id(consumer) in self.unaware:
                continue
            assert not listener.owned & seen
            seen |= listener.owned


TestGroupProtocol = GroupMachine.TestCase
TestGroupProtocol.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# -- positions and metadata -----------------------------------------------------------------------


def test_seek_position_and_the_sentinels() -> None:
    engine = engine_with(("t", 1))
    producer = engine.producer()
    for v in (b"a", b"b", b"c"):
        producer.send("t", v).result(1)
    reader = engine.consumer()
    reader.assign([TP("t", 0)])
    assert reader.position(TP("t", 0)) == 0
    reader.seek(TP("t", 0), 2)
    assert values(reader.poll(0)) == [b"c"]
    reader.seek(TP("t", 0), OFFSET_BEGINNING)
    assert values(reader.poll(0)) == [b"a", b"b", b"c"]
    reader.seek(TP("t", 0), OFFSET_END)
    assert reader.position(TP("t", 0)) == 3 and reader.poll(0) == []
    with pytest.raises(KafkaOperationFailed, match="not assigned"):
        reader.seek(TP("t", 1), 0)


def test_offsets_for_time_partitions_and_topics() -> None:
    clock = ManualClock(10_000)
    engine = engine_with(("t", 2), ("u", 1), clock=clock)
    producer = engine.producer()
    for _ in range(3):
        producer.send("t", b"x", partition=0).result(1)
        clock.advance(1_000)
    reader = engine.consumer()
    tps = [TP("t", 0), TP("t", 1)]
    assert reader.offsets_for_time(tps, 11_000) == {TP("t", 0): 1, TP("t", 1): None}
    assert reader.offsets_for_time(tps, 13_000) == {TP("t", 0): None, TP("t", 1): None}
    assert reader.partitions_for("t") == [0, 1]
    assert reader.partitions_for("missing") == []
    assert reader.topics() == {"t", "u"}


def test_pause_and_resume() -> None:
    engine = engine_with(("t", 2))
    producer = engine.producer()
    producer.send("t", b"zero", partition=0).result(1)
    producer.send("t", b"one", partition=1).result(1)
    reader = engine.consumer()
    reader.assign([TP("t", 0), TP("t", 1)])
    reader.pause([TP("t", 0)])
    assert values(reader.poll(0)) == [b"one"]
    reader.resume([TP("t", 0)])
    assert values(reader.poll(0)) == [b"zero"]


def test_poll_returns_at_most_max_records_in_partition_order() -> None:
    engine = engine_with(("t", 2))
    producer = engine.producer()
    for i in range(10):
        producer.send("t", b"%d" % i, partition=i % 2).result(1)
    reader = engine.consumer()
    reader.assign([TP("t", 0), TP("t", 1)])
    batches = [reader.poll(0, max_records=3) for _ in range(4)]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    for p in (0, 1):
        assert [r.offset for b in batches for r in b if r.partition == p] == list(range(5))


def test_poll_wakes_up_when_a_record_arrives() -> None:
    engine = engine_with(("t", 1))
    reader = engine.consumer()
    reader.assign([TP("t", 0)])
    threading.Timer(0.05, lambda: engine.producer().send("t", b"late")).start()
    assert values(reader.poll(10)) == [b"late"]


# -- admin ----------------------------------------------------------------------------------------


def test_topics_are_created_once_with_the_replication_asked() -> None:
    engine = MemoryEngine(brokers=3)
    admin = engine.admin()
    specs = [TopicSpec("audit", 6, 3, (("retention.ms", "-1"),)), TopicSpec("acks", 6, 3)]
    assert admin.create_topics(specs) == ["audit", "acks"]
    assert admin.create_topics(specs) == []
    assert admin.describe_topics(["audit", "missing"]) == {"audit": TopicInfo("audit", 6, 3)}
    assert admin.list_topics() == {"audit", "acks"}
    assert admin.describe_cluster().brokers == 3
    with pytest.raises(KafkaOperationFailed, match="replication factor 4"):
        admin.create_topics([TopicSpec("big", 1, 4)])
    with pytest.raises(KafkaOperationFailed, match="invalid topic name"):
        admin.create_topics([TopicSpec("no spaces", 1, 1)])


def test_partitions_only_grow() -> None:
    admin = engine_with(("t", 2)).admin()
    with pytest.raises(KafkaOperationFailed, match="only grow"):
        admin.create_partitions({"t": 2})
    admin.create_partitions({"t": 4})
    assert admin.describe_topics(["t"])["t"].partitions == 4


def test_configs_report_defaults_and_change_incrementally() -> None:
    engine = MemoryEngine()
    engine.create_topic("t", 1, config={"retention.ms": "-1"})
    admin = engine.admin()
    config = admin.describe_configs(["t"])["t"]
    assert config["retention.ms"] == "-1" and config["cleanup.policy"] == "delete"
    admin.alter_configs({"t": {"cleanup.policy": "compact,delete"}})
    config = admin.describe_configs(["t"])["t"]
    assert config["cleanup.policy"] == "compact,delete" and config["retention.ms"] == "-1"
    with pytest.raises(KafkaOperationFailed, match="does not exist"):
        admin.describe_configs(["missing"])


READ_FEED = AclBinding("User:nl-customs", ResourceType.TOPIC, PatternType.LITERAL, "feed.nl-customs", Operation.READ)


def test_acls_and_scram_users_are_stored() -> None:
    admin = MemoryEngine().admin()
    admin.create_acls([READ_FEED])
    assert admin.describe_acls() == [READ_FEED]
    admin.delete_acls([READ_FEED])
    assert admin.describe_acls() == []
    admin.upsert_scram_user("nl-customs", "secret")
    assert admin.scram_users() == {"nl-customs"}
    admin.delete_scram_user("nl-customs")
    assert admin.scram_users() == set()
    with pytest.raises(KafkaOperationFailed):
        admin.delete_scram_user("nl-customs")
    with pytest.raises(ProtocolMismatch):
        MemoryEngine(authorizer=False).admin().describe_acls()


def test_a_user_view_checks_credentials_and_enforces_acls() -> None:
    engine = engine_with(("feed.nl-customs", 1), ("feed.be-police", 1))
    engine.admin().upsert_scram_user("nl-customs", "secret")
    engine.producer().send("feed.nl-customs", b"for you").result(1)
    with pytest.raises(AuthenticationFailed):
        engine.as_user("nl-customs", "wrong").consumer().topics()
    member = engine.as_user("nl-customs", "secret")
    reader = member.consumer()
    reader.assign([TP("feed.nl-customs", 0)])
    with pytest.raises(NotAuthorized) as denied:
        reader.poll(0)
    assert denied.value.resource == "topic feed.nl-customs"
    engine.admin().create_acls([READ_FEED])
    assert values(reader.poll(0)) == [b"for you"]
    assert reader.topics() == {"feed.nl-customs"}
    with pytest.raises(NotAuthorized):
        member.producer().send("feed.be-police", b"forged")
    with pytest.raises(NotAuthorized):
        member.admin().create_topics([TopicSpec("feed.mine", 1, 1)])


# -- test helpers ---------------------------------------------------------------------------------


def test_raw_records_can_be_misplaced_and_hostile() -> None:
    engine = engine_with(("alerts.x", 6))
    headers = ((b"\x80\x81", b"\xff"), (b"bus_reject_reason", b"none"), (b"n", None))
    key = b"container-1"
    wrong = (partition_for(key, 6) + 1) % 6
    delivery = engine.produce_raw("alerts.x", wrong, b"v", key=key,
                                  headers=headers, timestamp_ms=42)
    [record] = engine.records("alerts.x")
    assert (record.partition, record.offset, record.timestamp_ms) == (wrong, delivery.offset, 42)
    assert record.headers == headers


def test_raw_records_still_meet_the_brokers_limit() -> None:
    engine = MemoryEngine(max_record_bytes=10)
    engine.create_topic("t", 1, config={"max.message.bytes": "100"})
    engine.produce_raw("t", 0, b"x" * 100)  # over the producer limit, within the broker's
    with pytest.raises(RecordTooLarge):
        engine.produce_raw("t", 0, b"x" * 101)
