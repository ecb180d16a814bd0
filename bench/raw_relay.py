"""The latency rows' baseline: a raw consume-transform-produce relay in its own process.

    python -m bench.raw_relay --bootstrap HOST:PORT --topics TAG --stats FILE [--until-stopped]

confluent-kafka directly, no crypto, no validation, no stores: per transaction the same
fan-out a router transaction writes, so the same partitions take part and the relay's
latency is the floor Kafka transactions set on this machine. For each input record on
partition p: the record unchanged (key, value, headers) to the feed, ~300 bytes to the
audit topic's partition p and to the changelog topic's partition p, ~300 bytes of receipt
to the receipts topic keyed by the producer; then the consumer positions in the
transaction; commit. The loop takes batches like the router: wait for the first record,
then take what is already fetched (500 at most).

Its topics are bench-private (`RelayTopics`), with the router's partition counts and
configs, so the router and the relay can run side by side on one broker without reading
each other's records. It runs until SIGTERM (the router is stopped the same way), and
writes its counters (transactions, records, seconds inside transactions, of which
sending offsets and committing) to `--stats` whenever it falls idle, so a reader sees
them current between offered loads.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import PRODUCER
from bus.core.topology import (
    AUDIT_TOPIC,
    CHANGELOG_TOPIC,
    FEED_PARTITIONS,
    ROUTING_PARTITIONS,
    Replication,
    TopicSpec,
    core_topics,
    feed_topic_spec,
    receipts_topic_spec,
)

BATCH = 500
ENTRY_SIZE = 300
"""About an audit entry's, a changelog entry's and a signed receipt's size."""
IDLE_POLL = 0.1


@dataclass(frozen=True)
class RelayTopics:
    """The relay's own topics; the names are bench-private, the shapes are the router's."""

    input: str
    feed: str
    audit: str
    changelog: str
    receipts: str

    @classmethod
    def for_tag(cls, tag: str) -> RelayTopics:
        return cls(f"bench.raw.in.{tag}", f"feed.bench-raw-{tag}", f"bench.raw.audit.{tag}",
                   f"bench.raw.changelog.{tag}", f"bench.raw.receipts.{tag}")

    def specs(self, replication: Replication) -> list[TopicSpec]:
        """The router's partition counts and configs (audit retention, changelog compaction)."""
        core = {spec.name: spec for spec in core_topics([], replication)}
        return [feed_topic_spec(self.input, replication, ROUTING_PARTITIONS),
                feed_topic_spec(self.feed, replication, FEED_PARTITIONS),
                replace(core[AUDIT_TOPIC], name=self.audit),
                replace(core[CHANGELOG_TOPIC], name=self.changelog),
                receipts_topic_spec(self.receipts, replication)]


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


def read_stats(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    except (OSError, ValueError):
        return None


def relay(bootstrap: str, topics: RelayTopics, group: str, stats_path: Path,
          retry_backoff_ms: int | None = None) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CTP

    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))
    # As the router's transactional producer is configured (the port's confluent engine, linger 2 ms).
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": group, "enable.idempotence": True,
                         "acks": "all", "partitioner": "murmur2_random", "linger.ms": 2,
                         "transaction.timeout.ms": 60_000,
                         **({"retry.backoff.ms": retry_backoff_ms} if retry_backoff_ms is not None else {})})
    producer.init_transactions(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(topics.input, timeout=10).topics[topics.input].partitions
    # Start at the end, resolved now: everything offered after the stats file says ready is relayed.
    consumer.assign([CTP(topics.input, p, consumer.get_watermark_offsets(CTP(topics.input, p), 10)[1])
                     for p in partitions])
    entry, receipt, producer_key = b"a" * ENTRY_SIZE, b"r" * ENTRY_SIZE, PRODUCER.encode()
    stats: dict[str, Any] = {"ready": True, "transactions": 0, "records": 0, "seconds": 0.0,
                             "offsets_seconds": 0.0, "commit_seconds": 0.0}
    write_stats(stats_path, stats)
    dirty = False
    while not stopping[0]:
        first = consumer.poll(IDLE_POLL)
        if first is None:
            if dirty:
                write_stats(stats_path, stats)
                dirty = False
            continue
        msgs = [m for m in [first, *consumer.consume(BATCH - 1, 0)] if m.error() is None]
        if not msgs:
            continue
        t0 = time.perf_counter()
        producer.begin_transaction()
        positions: dict[int, int] = {}
        for m in msgs:
            p, offset = m.partition(), m.offset()
            assert p is not None and offset is not None  # a record (not an event) has both
            producer.produce(topics.feed, m.value(), m.key(), headers=m.headers())
            producer.produce(topics.audit, entry, m.key(), partition=p)
            producer.produce(topics.changelog, entry, m.key(), partition=p)
            producer.produce(topics.receipts, receipt, producer_key)
            positions[p] = offset + 1
        t1 = time.perf_counter()
        producer.send_offsets_to_transaction([CTP(topics.input, p, o) for p, o in positions.items()],
                                             consumer.consumer_group_metadata(), 30)
        t2 = time.perf_counter()
        producer.commit_transaction(30)
        t3 = time.perf_counter()
        producer.poll(0)  # serve the delivery reports, as the port does
        stats["offsets_seconds"] += t2 - t1
        stats["commit_seconds"] += t3 - t2
        stats["transactions"] += 1
        stats["records"] += len(msgs)
        stats["seconds"] += t3 - t0
        dirty = True
    write_stats(stats_path, stats)
    consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="the tag of the relay's topics (RelayTopics.for_tag)")
    parser.add_argument("--group", required=True, help="consumer group and transactional id")
    parser.add_argument("--stats", type=Path, required=True, help="JSON counters, rewritten when idle")
    parser.add_argument("--until-stopped", action="store_true", help="run until SIGTERM (the only mode)")
    parser.add_argument("--retry-backoff-ms", type=int, default=None,
                        help="librdkafka retry.backoff.ms (default: librdkafka's, as the port leaves it)")
    args = parser.parse_args()
    relay(args.bootstrap, RelayTopics.for_tag(args.topics), args.group, args.stats, args.retry_backoff_ms)


if __name__ == "__main__":
    main()
