"""Route row: the router against a raw transactional copy with the same engine, in one run.

Input: `n` signed alerts with distinct container numbers (so distinct keys, spread over
the 6 partitions of `alerts.suspicious-container` by murmur2, as a producer puts them).

Raw: the client library itself. consume (read_committed, batches of 500) -> for each
record produce it unchanged to a copy topic plus a 300-byte record to a second topic
(an audit entry's size) -> the consumer positions in the transaction -> commit.

Bus: `Bus.router(...)` in this process on that engine, batches of 500 (the default):
verify the signature, decode and validate, freshness, placement, replay window, policy;
per alert a feed copy, an audit entry chained to the task's head, a changelog entry, a
signed receipt to the producer; offsets; one transaction per batch; the task stores
updated after the commit. The clock starts once the router holds its tasks (joining
the group and restoring are the restart row's business).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    ALERT_TOPIC,
    FEED,
    PARTNER,
    ROUTER_ID,
    AlertFactory,
    blast,
    measured,
    new_signer,
    seal_all,
    tag,
)
from bus.adapters.kafka import Engine, TopicPartition
from bus.adapters.kafka.reading import commit_ends, ensure_topics
from bus.adapters.policy_file import load_policy
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.models import AlertType
from bus.core.topology import AUDIT_CHECKPOINTS_TOPIC, ROUTER_SUBSCRIPTION, Replication, TopicSpec, core_topics
from bus.services.router import Router, RouterIdentity, RouterOptions

BATCH = 500
AUDIT_SIZE = 300


def write_policy(path: Path) -> Path:
    """Every alert to one partner: the router's full path, one feed copy per alert."""
    path.write_text(yaml.safe_dump({
        "version": "bench",
        "partners": [{"id": PARTNER, "kind": "eu-agency", "feed": FEED}],
        "rules": [{"id": "all", "match": {}, "deliver_to": [PARTNER]}],
    }))
    return path


def ensure_router_topics(engine: Engine) -> None:
    """The co-partitioned topics and the feed, as a router creates them."""
    admin = engine.admin()
    try:
        replication = Replication.for_cluster(admin.describe_cluster().brokers)
        ensure_topics(admin, [*core_topics([t.value for t in AlertType], replication),
                              TopicSpec(AUDIT_CHECKPOINTS_TOPIC, 1, replication.factor),
                              TopicSpec(FEED, 6, replication.factor)])
    finally:
        admin.close()


def start_at_end(engine: Engine, group: str) -> None:
    """Commit, for a new group, the current end of every topic routers read: it routes only
    what this benchmark writes from now on."""
    commit_ends(engine, group, ROUTER_SUBSCRIPTION)


def input_ends(engine: Engine) -> dict[int, int]:
    """High watermark of each partition of the alert topic."""
    consumer = engine.consumer(read_committed=True)
    try:
        return {p: consumer.watermarks(TopicPartition(ALERT_TOPIC, p))[1]
                for p in consumer.partitions_for(ALERT_TOPIC)}
    finally:
        consumer.close()


# -- raw transactional copy ------------------------------------------------------------------------


def raw_copy_confluent(bootstrap: str, starts: dict[int, int], n: int, target: str, audit: str) -> tuple[Any, int]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CTP

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-raw-{tag()}",
                         "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random",
                         "linger.ms": 2, "transaction.timeout.ms": 20_000})
    producer.init_transactions(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{tag()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "auto.offset.reset": "earliest"})
    consumer.assign([CTP(ALERT_TOPIC, p, o) for p, o in starts.items()])
    filler = b"a" * AUDIT_SIZE
    done = 0
    deadline = time.monotonic() + 600
    with measured() as span:
        while done < n and time.monotonic() < deadline:
            msgs = [m for m in consumer.consume(BATCH, 0.5) if m.error() is None]
            if not msgs:
                continue
            producer.begin_transaction()
            positions: dict[int, int] = {}
            for m in msgs:
                producer.produce(target, m.value(), m.key(), headers=m.headers())
                producer.produce(audit, filler, m.key())
                positions[m.partition()] = m.offset() + 1
            producer.send_offsets_to_transaction([CTP(ALERT_TOPIC, p, o) for p, o in positions.items()],
                                                 consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            done += len(msgs)
    consumer.close()
    return span, done


def raw_copy_kafka_python(bootstrap: str, starts: dict[int, int], n: int, target: str,
                          audit: str) -> tuple[Any, int]:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"bench-raw-{tag()}", acks="all",
                             enable_idempotence=True, linger_ms=2, transaction_timeout_ms=20_000)
    producer.init_transactions()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-raw-{tag()}",
                             isolation_level="read_committed", enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=BATCH)
    tps = {p: KTP(ALERT_TOPIC, p) for p in starts}
    consumer.assign(list(tps.values()))
    for p, o in starts.items():
        consumer.seek(tps[p], o)
    filler = b"a" * AUDIT_SIZE
    done = 0
    deadline = time.monotonic() + 600
    with measured() as span:
        while done < n and time.monotonic() < deadline:
            msgs = [m for ms in consumer.poll(timeout_ms=500, max_records=BATCH).values() for m in ms]
            if not msgs:
                continue
            producer.begin_transaction()
            positions = {}
            for m in msgs:
                producer.send(target, key=m.key, value=m.value, headers=m.headers)
                producer.send(audit, key=m.key, value=filler)
                positions[KTP(m.topic, m.partition)] = OffsetAndMetadata(m.offset + 1, "", -1)
            producer.send_offsets_to_transaction(positions, consumer.group_metadata())
            producer.commit_transaction()
            done += len(msgs)
    consumer.close()
    producer.close()
    return span, done


# -- the router ------------------------------------------------------------------------------------


def bus_route(bus: Bus, signer: SigningKey, policy: Path, state: Path, group: str, n: int,
              profile: Path | None = None) -> tuple[Any, int, Router]:
    ring = Keyring()
    ring.add(signer.member, signer.public)
    router = bus.router(lambda: (load_policy(policy), ring),
                        RouterIdentity(ROUTER_ID, SigningKey.generate(ROUTER_ID)),
                        RouterOptions(state_dir=state, group_id=group, transactional_prefix=group, batch_size=BATCH))
    router.start()

    def handled() -> int:
        return router.stats.routed + router.stats.rejected

    try:
        deadline = time.monotonic() + 600
        while len(router.tasks) < 6 and time.monotonic() < deadline:
            router.turn()
        base = handled()
        profiler = None
        if profile is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        with measured() as span:
            while handled() < n and time.monotonic() < deadline:
                router.turn()
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        return span, handled() - base, router
    finally:
        router.close()


def bench_route(settings: KafkaSettings, engine: str, n: int, work: Path) -> dict[str, Any]:
    bus = Bus(settings.model_copy(update={"engine": engine}))
    ensure_router_topics(bus.engine)
    group = f"bench-route-{engine}-{tag()}"
    start_at_end(bus.engine, group)
    starts = input_ends(bus.engine)
    signer = new_signer()
    blast(settings.bootstrap, seal_all(AlertFactory().make(n), signer))

    target, audit = f"bench.copy.{tag()}", f"bench.copy.audit.{tag()}"
    bus.ensure_topics([TopicSpec(target, 6, 1), TopicSpec(audit, 6, 1)])
    raw_span, raw_done = (raw_copy_confluent if engine == "confluent" else raw_copy_kafka_python)(
        settings.bootstrap, starts, n, target, audit)
    work.mkdir(parents=True, exist_ok=True)
    policy = write_policy(work / "policy.yaml")
    bus_span, bus_done, router = bus_route(bus, signer, policy, work / f"state-{engine}", group, n)
    stats = router.stats
    return {
        "engine": engine, "records": n, "partitions": len(starts),
        "raw_per_s": raw_span.rate(raw_done), "bus_per_s": bus_span.rate(bus_done),
        "ratio": bus_span.rate(bus_done) / raw_span.rate(raw_done),
        "raw_cpu_us": raw_span.cpu_us(raw_done), "bus_cpu_us": bus_span.cpu_us(bus_done),
        "bus_routed": stats.routed, "bus_rejected": stats.rejected, "by_reason": dict(stats.by_reason),
        "bus_measured_records": bus_done, "raw_measured_records": raw_done,
    }
