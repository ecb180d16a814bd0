"""Produce row: the bus publisher against the same engine's raw producer, in one run.

Raw: the client library itself, configured as the port's engine configures it, sending
the same pre-built records (bytes, key, headers) to a 6-partition topic, then flushing.
Bus: `Bus.publisher(signer).publish_many(alerts)` on that engine: seal (Avro encode,
CloudEvents headers, Ed25519 signature), size check, send through the port, flush,
await every delivery.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    AlertFactory,
    measured,
    new_signer,
    raw_confluent_producer,
    raw_kafka_python_producer,
    seal_all,
    tag,
)
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.sealing import SealedRecord
from bus.core.topology import TopicSpec


def _raw_producer(engine: str, bootstrap: str) -> Any:
    return raw_confluent_producer(bootstrap) if engine == "confluent" else raw_kafka_python_producer(bootstrap)


def _raw_send(engine: str, producer: Any, topic: str, records: list[SealedRecord]) -> None:
    """Send every record, then wait until each is acknowledged."""
    if engine == "confluent":
        for r in records:
            while True:
                try:
                    producer.produce(topic, r.value, r.key, headers=r.headers)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120) != 0:
            raise RuntimeError("raw confluent producer: records not acknowledged")
    else:
        futures = [producer.send(topic, value=r.value, key=r.key, headers=r.headers)
                   for r in records]
        producer.flush(120)
        for f in futures:
            f.get(timeout=0)


def bench_produce(settings: KafkaSettings, engine: str, n: int) -> dict[str, Any]:
    bus = Bus(settings.model_copy(update={"engine": engine}))
    bus.ensure_alert_topics()
    raw_topic = f"bench.raw.{engine}.{tag()}"
    bus.ensure_topics([TopicSpec(raw_topic, 6, 1)])
    signer = new_signer()
    factory = AlertFactory()
    prebuilt = seal_all(factory.make(n), signer)
    producer = _raw_producer(engine, settings.bootstrap)
    _raw_send(engine, producer, raw_topic, prebuilt[:200])  # connected and warm, like the publisher below
    with measured() as raw:
        _raw_send(engine, producer, raw_topic, prebuilt)
    if engine != "confluent":
        producer.close()
    alerts = factory.make(n)
    with bus.publisher(signer) as publisher:
        publisher.publish_many(factory.make(200))  # warm-up
        with measured() as bus_span:
            publisher.publish_many(alerts)
    return {
        "engine": engine, "records": n, "value_bytes": round(sum(len(r.value) for r in prebuilt) / n),
        "raw_per_s": raw.rate(n), "bus_per_s": bus_span.rate(n), "ratio": bus_span.rate(n) / raw.rate(n),
        "raw_cpu_us": raw.cpu_us(n), "bus_cpu_us": bus_span.cpu_us(n),
    }
