"""What is already on the alert topics: end offsets, and which of our ids made it.

Reads record headers only (`ce_id` is the message id); values are not decoded
or verified, since we are looking for our own stable ids, not trusting data.
Both go through the Kafka port (`bus.adapters.kafka.reading` reads to the end).
"""

from __future__ import annotations

from collections.abc import Iterable

from bus.adapters.kafka import Engine, Record, TopicPartition
from bus.adapters.kafka.reading import read_to_end
from connectors.sdk.inbox.checkpoint import Offsets

ID_HEADER = b"ce_id"


def end_offsets(engine: Engine, topics: Iterable[str], timeout_s: float = 10.0) -> Offsets:
    """The next offset to be written on every partition of `topics` (read_committed: the last
    stable offset), by topic and partition."""
    consumer = engine.consumer(read_committed=True)
    try:
        result: Offsets = {}
        for topic in sorted(set(topics)):
            for partition in consumer.partitions_for(topic, timeout_s):
                _, end = consumer.watermarks(TopicPartition(topic, partition), timeout_s)
                result.setdefault(topic, {})[partition] = end
        return result
    finally:
        consumer.close()


def published_ids(engine: Engine, scan_from: Offsets, topics: Iterable[str], wanted: set[str],
                  timeout_s: float = 10.0) -> set[str]:
    """The subset of `wanted` message ids found on `topics` from `scan_from` to the current end.

    Raises `NotAuthorized` for a principal that may not read the topics, `OutcomeUnknown`
    if the end is not reached within `timeout_s`."""
    if not wanted:
        return set()
    found: set[str] = set()
    for topic in sorted(set(topics)):
        for record in read_to_end(engine, topic, start=scan_from.get(topic, {}), timeout=timeout_s):
            if not isinstance(record, Record):
                continue
            for name, value in record.headers:
                if name == ID_HEADER and value is not None:
                    text = value.decode(errors="replace")
                    if text in wanted:
                        found.add(text)
    return found
