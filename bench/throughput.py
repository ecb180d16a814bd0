"""Throughput of the bus against raw kafka-python, measured in the same run.

The machine is shared and noisy, so absolute numbers mean little; the ratio
"bus / raw kafka-python" on the same broker, same minute, is the figure we
track. Starts its own local broker unless BUS_BOOTSTRAP is set.

    .venv/bin/python bench/throughput.py [--count 5000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.models import parse_alert
from bus.core.sealing import seal, unseal

REPO = Path(__file__).resolve().parents[1]


def make_alerts(n: int, producer: str):  # type: ignore[no-untyped-def]
    import json

    base = json.loads((REPO / "examples/alerts/suspicious-container.json").read_text())
    base["header"] = {k: v for k, v in base["header"].items() if k not in ("message_id", "created", "producer")}
    codes = default_empact_codes()
    return [parse_alert(base, empact_codes=codes, producer=producer) for _ in range(n)]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_core(n: int) -> dict[str, float]:
    signer = SigningKey.generate("NL-CUSTOMS")
    ring = Keyring()
    ring.add(signer.member, signer.public)
    schemas, codes = default_schemas(), default_empact_codes()
    alerts = make_alerts(n, signer.member)
    t0 = time.perf_counter()
    sealed = [seal(a, signer, schemas) for a in alerts]
    t1 = time.perf_counter()
    for r in sealed:
        unseal(r.key, r.value, r.headers, ring, schemas, codes)
    t2 = time.perf_counter()
    return {"seal/s": rate(n, t1 - t0), "unseal/s": rate(n, t2 - t1),
            "value bytes": sum(len(r.value) for r in sealed) / n}


def bench_produce(settings: KafkaSettings, n: int) -> dict[str, float]:
    from bus.services.publisher import Publisher

    signer = SigningKey.generate("NL-CUSTOMS")
    alerts = make_alerts(n, signer.member)
    sample = seal(alerts[0], signer, default_schemas())
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    kafka_adapter.ensure_topics(settings, [kafka_adapter.TopicSpec(topic, 6), *kafka_adapter.default_topics()])

    # raw kafka-python: same producer settings, same-sized pre-built records, no signing
    raw = kafka_adapter.producer(settings)
    payload, headers = sample.value, sample.headers
    t0 = time.perf_counter()
    for i in range(n):
        raw.send(topic, key=str(i).encode(), value=payload, headers=headers)
    raw.flush()
    raw_s = time.perf_counter() - t0
    raw.close()

    with Publisher(settings, signer) as publisher:
        t0 = time.perf_counter()
        publisher.publish_many(alerts)
        bus_s = time.perf_counter() - t0
    return {"raw/s": rate(n, raw_s), "bus/s": rate(n, bus_s)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    n = args.count
    from bus.logs import configure

    configure(json=True, level="WARNING")  # per-record router logs would measure the terminal

    core = bench_core(min(n, 2000))
    broker = None
    if os.environ.get("BUS_BOOTSTRAP"):
        settings = KafkaSettings()
    else:
        from bus.adapters.broker import LocalBroker, free_port

        broker = LocalBroker(Path(tempfile.mkdtemp(prefix="bus-bench-")), port=free_port(),
                             controller_port=free_port())
        broker.start()
        settings = KafkaSettings(bootstrap=broker.bootstrap)
    try:
        from bench.router_bench import bench_router

        # The router bench needs the alert topics to hold only its own alerts: run it first.
        router = bench_router(settings, n)
        produce = bench_produce(settings, n)
    finally:
        if broker is not None:
            broker.stop()

    print(f"\n{n} alerts, {core['value bytes']:.0f}-byte Avro values\n")
    print("| path | raw kafka-python | bus | bus / raw |")
    print("|---|---|---|---|")
    print(f"| produce (signed publish vs raw send) | {produce['raw/s']:,.0f}/s | {produce['bus/s']:,.0f}/s "
          f"| {produce['bus/s'] / produce['raw/s']:.2f} |")
    print(f"| route (verify+policy+audit, EOS vs raw transactional copy) | {router['raw/s']:,.0f}/s "
          f"| {router['bus/s']:,.0f}/s | {router['bus/s'] / router['raw/s']:.2f} |")
    print(f"| seal in memory (encode+sign) | | {core['seal/s']:,.0f}/s | |")
    print(f"| unseal in memory (verify+decode+validate) | | {core['unseal/s']:,.0f}/s | |")


if __name__ == "__main__":
    main()
