"""Helpers over the port, for any engine: read a topic to its end, create missing topics."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from bus.adapters.kafka._common import KAFKA_LOG, Deadline
from bus.adapters.kafka.port import Admin, Engine
from bus.adapters.kafka.records import Polled, TopicPartition
from bus.core.topology import TopicSpec
from bus.errors import NotAuthorized, OutcomeUnknown


def read_to_end(engine: Engine, topic: str, *, partitions: Sequence[int] | None = None,
                last: int | None = None, start: Mapping[int, int] | None = None,
                timeout: float = 60.0) -> list[Polled]:
    """Every committed record of `topic` up to its end offsets as of the call, by partition
    and offset (`last`: only the last N offsets of each partition; `start`: from these offsets,
    by partition). For audits, state restore and tests; not for live feeds.

    The end of a partition is reached when the consumer's position gets there, which it
    does past transaction markers and aborted records too, so a partition whose tail holds
    nothing visible still ends. `OutcomeUnknown` if the end is not reached within `timeout`.
    """
    consumer = engine.consumer(read_committed=True, from_beginning=True)
    try:
        numbers = list(partitions) if partitions is not None else consumer.partitions_for(topic)
        tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        if not tps:
            return []
        bounds = end_offsets(engine, tps)
        ends: dict[TopicPartition, int] = {}
        firsts: dict[TopicPartition, int] = {}
        for tp in tps:
            low, end = bounds[tp]
            ends[tp] = end
            first = low if last is None else max(low, end - last)
            if start is not None:
                first = max(first, start.get(tp.partition, low))
            if first < end:
                firsts[tp] = first
        remaining = set(firsts)
        consumer.assign(list(firsts), offsets=firsts)
        out: list[Polled] = []
        deadline = Deadline(timeout)
        while remaining:
            if deadline.expired():
                where = ", ".join(f"{tp.partition}: {consumer.position(tp)}/{ends[tp]}" for tp in sorted(remaining))
                raise OutcomeUnknown(f"read {len(out)} record(s) of {topic} but did not reach its end "
                                     f"within {timeout:g} s (partition: position/end {where})")
            for polled in consumer.poll(min(0.5, deadline.remaining())):
                if polled.tp in ends and polled.offset < ends[polled.tp]:
                    out.append(polled)
            remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def end_offsets(engine: Engine, tps: Sequence[TopicPartition], *,
                read_committed: bool = True) -> dict[TopicPartition, tuple[int, int]]:
    """(low, high) of each partition, asked of a consumer that never reads.

    Not of the consumer that will read them: once assigned, a librdkafka consumer long-polls
    its fetch on the leader's connection and each offsets request waits behind it (0.5 s a
    partition); and asked before its first fetch, librdkafka may never start fetching a
    partition (a `bus tail` under ACLs saw nothing of a record it had just counted)."""
    probe = engine.consumer(read_committed=read_committed)
    try:
        return {tp: probe.watermarks(tp) for tp in tps}
    finally:
        probe.close()


def commit_ends(engine: Engine, group: str, topic_pattern: str) -> None:
    """Commit, for `group`, the current end of every topic matching `topic_pattern`: a new
    group then starts with what is written from now on (a router group that must not route
    what the cluster already holds)."""
    consumer = engine.consumer(group_id=group, read_committed=True)
    try:
        pattern = re.compile(topic_pattern)
        ends = {}
        for topic in consumer.topics():
            if pattern.search(topic):
                for p in consumer.partitions_for(topic):
                    tp = TopicPartition(topic, p)
                    ends[tp] = consumer.watermarks(tp)[1]
        consumer.assign(list(ends))
        consumer.commit(ends)
    finally:
        consumer.close()


def ensure_topics(admin: Admin, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist; return the names created.

    On a secured cluster a principal sees only the topics it may use and usually may
    not create any: those are provisioned (`bus provision`), so a denied create is
    skipped (logged at debug) and a real absence shows when a client uses the topic.
    """
    specs = list(specs)
    existing = admin.list_topics()
    created: list[str] = []
    for spec in specs:
        if spec.name in existing:
            continue
        try:
            created += admin.create_topics([spec])
        except NotAuthorized as exc:
            KAFKA_LOG.debug("not allowed to create topic %s, skipped: %s", spec.name, exc)
    return created
