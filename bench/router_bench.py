"""Router throughput vs a raw kafka-python transactional copy loop (same batch size)."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from bus.adapters import kafka_legacy as kafka_adapter
from bus.config import KafkaSettings
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.services.publisher import Publisher
from bus.services.router import Router, RouterOptions

BATCH = 500


def _alerts(n: int, producer: str):  # type: ignore[no-untyped-def]
    from bench.throughput import make_alerts

    return make_alerts(n, producer)


def raw_copy(settings: KafkaSettings, source: str, n: int) -> float:
    """consume -> produce -> send offsets -> commit, batch by batch, nothing else."""
    target = f"bench.copy.{uuid.uuid4().hex[:6]}"
    kafka_adapter.ensure_topics(settings, [kafka_adapter.TopicSpec(target, 6)])
    producer = kafka_adapter.producer(settings, transactional_id=f"bench-raw-{uuid.uuid4().hex[:6]}", linger_ms=2)
    producer.init_transactions()
    consumer = kafka_adapter.consumer(settings, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", max_poll_records=BATCH)
    consumer.subscribe([source])
    done = 0
    started: float | None = None  # the clock starts with the first batch, like the router's
    deadline = time.monotonic() + 600
    while done < n and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500, max_records=BATCH)
        msgs = [m for ms in batch.values() for m in ms]
        if not msgs:
            continue
        if started is None:
            started = time.perf_counter()
        producer.begin_transaction()
        offsets = {}
        for m in msgs:
            producer.send(target, key=m.key, value=m.value, headers=m.headers)
            producer.send("bench.copy.audit", value=b"x" * 300)
            offsets[TopicPartition(m.topic, m.partition)] = OffsetAndMetadata(m.offset + 1, "", -1)
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        done += len(msgs)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    producer.close()
    return elapsed


def bus_route(settings: KafkaSettings, signer: SigningKey, n: int) -> float:
    """Records per second once the router owns its partitions (joining the group is not routing)."""
    ring = Keyring()
    ring.add(signer.member, signer.public)
    work = Path(tempfile.mkdtemp(prefix="bus-bench-router-"))
    policy = work / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "version": "bench",
        "partners": [{"id": "EUROPOL", "kind": "eu-agency", "feed": f"feed.bench-{uuid.uuid4().hex[:6]}"}],
        "rules": [{"id": "all", "match": {}, "deliver_to": ["EUROPOL"]}],
    }))

    def load():  # type: ignore[no-untyped-def]
        from bus.adapters.policy_file import load_policy

        return load_policy(policy), ring

    tag = uuid.uuid4().hex[:6]
    router = Router(settings, load, options=RouterOptions(group_id=f"bench-{tag}", transactional_id=f"bench-{tag}",
                                                         batch_size=BATCH))
    router.start()

    def handled() -> int:
        return router.stats.routed + router.stats.rejected

    try:
        deadline = time.monotonic() + 600
        while not router._consumer.assignment() and time.monotonic() < deadline:  # type: ignore[union-attr]
            router.process_once()
        base, started = handled(), time.perf_counter()
        while handled() < n and time.monotonic() < deadline:
            router.process_once()
        return (handled() - base) / (time.perf_counter() - started)
    finally:
        router.close()


def bench_router(settings: KafkaSettings, n: int) -> dict[str, float]:
    signer = SigningKey.generate("NL-CUSTOMS")
    audit_copy = kafka_adapter.TopicSpec("bench.copy.audit", 1)
    kafka_adapter.ensure_topics(settings, [*kafka_adapter.default_topics(), audit_copy])
    with Publisher(settings, signer) as pub:
        pub.publish_many(_alerts(n, signer.member))
    raw_s = raw_copy(settings, "alerts.suspicious-container", n)
    return {"raw/s": n / raw_s, "bus/s": bus_route(settings, signer, n)}
