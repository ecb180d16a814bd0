"""A routing task's state and how it comes back from Kafka when the task is assigned.

Task p owns partition p of every input topic and its state:

- the routing store (replay window + who received what): a local SQLite file
  (`bus.adapters.task_store`) kept current from `router.changelog` partition p;
- the audit chain p: its head (seq, hash), the last checkpoint, and the decision
  entries since it (the segment the next checkpoint covers), read from the tail of
  `audit` partition p, which is authoritative and kept forever.

Restore reads both up to the partitions' true end (the high watermark a
read_uncommitted reader sees), with a read_committed reader. So it waits until any
transaction still open on them (a router that died mid-batch) is settled, committed or
aborted, and never starts from a state that a late commit would then fork. Its cost is
what changed since this instance last held the task, plus one checkpoint interval of
audit entries: not the length of the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.adapters.kafka import Engine, Record, TopicPartition
from bus.adapters.kafka._common import Deadline
from bus.adapters.kafka.reading import end_offsets
from bus.adapters.task_store import RoutedEntry, TaskStore
from bus.core.audit import CHECKPOINT, DECISION, AuditChain, CheckpointRef, SegmentEntry
from bus.core.topology import AUDIT_TOPIC, CHANGELOG_TOPIC
from bus.errors import OutcomeUnknown, TopologyMismatch


@dataclass
class TaskState:
    """Everything task p needs between transactions (only committed state lives here)."""

    partition: int
    store: TaskStore
    chain: AuditChain
    segment: list[SegmentEntry] = field(default_factory=list)
    prev_checkpoint: CheckpointRef | None = None
    segment_since: float = field(default_factory=time.monotonic)
    """When the first entry not covered by a checkpoint was committed (monotonic)."""

    def close(self) -> None:
        self.store.close()


class StateReader:
    """Reads state partitions to their true end; one consumer for a whole restore."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._committed = engine.consumer(read_committed=True, from_beginning=True, max_poll_records=2000)

    def bounds(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(low, true end) of each partition: the end includes records of open transactions
        (read_uncommitted offsets, asked of a consumer that never reads: `end_offsets`)."""
        return end_offsets(self._engine, list(tps), read_committed=False)

    def read(self, ranges: dict[TopicPartition, tuple[int, int]],
             deadline: Deadline) -> dict[TopicPartition, list[Record]]:
        """Committed records of each partition in [start, end); waits while a transaction holds them."""
        wanted = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        out: dict[TopicPartition, list[Record]] = {tp: [] for tp in ranges}
        if not wanted:
            return out
        consumer = self._committed
        consumer.assign(list(wanted), offsets={tp: start for tp, (start, _) in wanted.items()})
        remaining = set(wanted)
        while remaining:
            if deadline.expired():
                where = ", ".join(f"{tp.topic}[{tp.partition}] at {consumer.position(tp)} of {wanted[tp][1]}"
                                  for tp in sorted(remaining))
                raise OutcomeUnknown(f"restoring task state did not reach the end in time ({where}): "
                                     "a transaction still open on it (a router that died?) was not settled")
            for polled in consumer.poll(min(0.5, max(0.05, deadline.remaining())), max_records=2000):
                if isinstance(polled, Record) and polled.tp in wanted and polled.offset < wanted[polled.tp][1]:
                    out[polled.tp].append(polled)
            remaining = {tp for tp in remaining if consumer.position(tp) < wanted[tp][1]}
        return out

    def close(self) -> None:
        self._committed.close()


@dataclass(frozen=True)
class AuditTail:
    chain: AuditChain
    segment: list[SegmentEntry]
    prev_checkpoint: CheckpointRef | None


def _entry(record: Record, partition: int) -> dict[str, Any]:
    try:
        entry = json.loads(record.value or b"")
        if not isinstance(entry, dict) or int(entry["chain"]) != partition:
            raise ValueError("not an entry of this chain")
        int(entry["seq"]), str(entry["hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TopologyMismatch(
            f"{AUDIT_TOPIC}[{partition}] offset {record.offset} is not an entry of audit chain {partition} ({exc}); "
            "the router will not extend a chain it cannot read: check who writes to the audit topic") from None
    return entry


def tail_of(records: Iterable[Record], partition: int, *, complete: bool) -> AuditTail | None:
    """Head, last checkpoint and segment from the tail of chain p; None if the tail holds no
    checkpoint and is not the whole chain (read further back)."""
    entries = [_entry(r, partition) for r in records]
    last_cp = max((i for i, e in enumerate(entries) if e.get("kind") == CHECKPOINT), default=None)
    if last_cp is None and not complete:
        return None
    if not entries:
        return AuditTail(AuditChain(partition), [], None)
    since = entries[last_cp + 1:] if last_cp is not None else entries
    prev = CheckpointRef(int(entries[last_cp]["seq"]), str(entries[last_cp]["hash"])) if last_cp is not None else None
    segment = [SegmentEntry(int(e["seq"]), str(e["hash"]), e.get("receipt_to")) for e in since
               if e.get("kind", DECISION) == DECISION]
    return AuditTail(AuditChain.after(entries[-1]), segment, prev)


def restore(engine: Engine, partitions: Collection[int], store_dir: Path, *, window: int,
            timeout: float, horizon_ms: int) -> dict[int, TaskState]:
    """Restore tasks `partitions`: each store brought up to its changelog's end, each chain's tail read."""
    deadline = Deadline(timeout)
    reader = StateReader(engine)
    stores: dict[int, TaskStore] = {}
    try:
        changelog = {p: TopicPartition(CHANGELOG_TOPIC, p) for p in partitions}
        audit = {p: TopicPartition(AUDIT_TOPIC, p) for p in partitions}
        bounds = reader.bounds([*changelog.values(), *audit.values()])
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for p, tp in changelog.items():
            store = stores[p] = TaskStore(store_dir / f"task-{p}.sqlite")
            low, end = bounds[tp]
            start = store.changelog_offset
            if start > end:  # the changelog was recreated under this copy: start over
                store.reset()
                start = 0
            ranges[tp] = (max(start, low), end)
        for tp, records in reader.read(ranges, deadline).items():
            p = tp.partition
            entries, gone = [], []
            for record in records:
                entry = RoutedEntry.decode(record.key, record.value)
                if entry is not None:
                    entries.append(entry)
                elif record.key is not None and record.value is None:
                    gone.append(record.key.decode("ascii", "replace"))
            if gone:
                stores[p].forget(gone, ranges[tp][1])
            stores[p].apply(entries, ranges[tp][1])
            stores[p].evict(horizon_ms)
        tails = _audit_tails(reader, audit, bounds, window, deadline)
        return {p: TaskState(p, stores[p], tails[p].chain, tails[p].segment, tails[p].prev_checkpoint)
                for p in partitions}
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    finally:
        reader.close()


def _audit_tails(reader: StateReader, audit: dict[int, TopicPartition], bounds: dict[TopicPartition, tuple[int, int]],
                 window: int, deadline: Deadline) -> dict[int, AuditTail]:
    """Read each chain backwards from its end in growing windows until its last checkpoint shows."""
    found: dict[int, AuditTail] = {}
    size = max(64, window)
    while len(found) < len(audit):
        ranges = {tp: (max(bounds[tp][0], bounds[tp][1] - size), bounds[tp][1])
                  for p, tp in audit.items() if p not in found}
        for tp, records in reader.read(ranges, deadline).items():
            tail = tail_of(records, tp.partition, complete=ranges[tp][0] <= bounds[tp][0])
            if tail is not None:
                found[tp.partition] = tail
        size *= 4
    return found
