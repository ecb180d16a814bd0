"""What is already on the alert topics: end offsets, and which of our ids made it.

Reads record headers only (`ce_id` is the message id); values are not decoded
or verified, since we are looking for our own stable ids, not trusting data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition

from bus.adapters import kafka_legacy as kafka_adapter
from bus.config import KafkaSettings
from connectors.sdk.inbox.checkpoint import Offsets

ID_HEADER = "ce_id"


def _consumer(settings: KafkaSettings, timeout_s: float) -> KafkaConsumer:
    quick = settings.model_copy(update={"bootstrap_timeout_ms": int(timeout_s * 1000)})
    return kafka_adapter.consumer(quick, group_id=None, request_timeout_ms=max(int(timeout_s * 1000), 5000))


def _partitions(client: object, topic: str) -> list[TopicPartition]:
    found = client.partitions_for_topic(topic) or set()  # type: ignore[attr-defined]
    return [TopicPartition(topic, p) for p in sorted(found)]


def end_offsets(settings: KafkaSettings, topics: Iterable[str], timeout_s: float = 10.0) -> Offsets:
    client = _consumer(settings, timeout_s)
    try:
        parts = [tp for topic in sorted(set(topics)) for tp in _partitions(client, topic)]
        ends = client.end_offsets(parts) if parts else {}
        result: Offsets = {}
        for tp, offset in ends.items():
            result.setdefault(tp.topic, {})[tp.partition] = offset
        return result
    finally:
        client.close()


def published_ids(settings: KafkaSettings, scan_from: Offsets, topics: Iterable[str], wanted: set[str],
                  timeout_s: float = 10.0, idle_timeout_s: float = 3.0) -> set[str]:
    """The subset of `wanted` message ids found on `topics` from `scan_from` to the current end."""
    if not wanted:
        return set()
    client = _consumer(settings, timeout_s)
    found: set[str] = set()
    try:
        parts = [tp for topic in sorted(set(topics)) for tp in _partitions(client, topic)]
        if not parts:
            return found
        client.assign(parts)
        ends = client.end_offsets(parts)
        for tp in parts:
            client.seek(tp, min(scan_from.get(tp.topic, {}).get(tp.partition, 0), ends[tp]))
        remaining = {tp for tp in parts if client.position(tp) < ends[tp]}
        idle_since = time.monotonic()
        while remaining:
            batch = client.poll(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    for name, value in record.headers or ():
                        if name == ID_HEADER and value.decode(errors="replace") in wanted:
                            found.add(value.decode())
            if batch:
                idle_since = time.monotonic()
            remaining = {tp for tp in remaining if client.position(tp) < ends[tp]}
            if not batch and time.monotonic() - idle_since > idle_timeout_s:
                break  # only transaction markers left before the end
        return found
    finally:
        client.close()
