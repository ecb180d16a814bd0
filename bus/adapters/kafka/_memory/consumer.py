"""The consumer on the in-memory cluster: group membership, positions, fetching.

Group changes are applied inside `poll`, on the caller's thread, in the order the
eager protocol gives them: `on_lost` (we were dropped), `on_revoked` (a rebalance
started: everything goes back), `on_assigned` (the new generation). Callbacks run
without the cluster's lock held, so they may use any client. Positions are resolved
at the first fetch after an assignment: the group's committed offset if there is one
(waiting while a transaction still holds offsets for the partition, as
`require_stable` does), else the start or the end of the partition.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bus.adapters.kafka._memory.cluster import Cluster, Principal
from bus.adapters.kafka._memory.groups import Group, Member, MemoryGroupMetadata
from bus.adapters.kafka._memory.log import DataEntry, PartitionLog, UndecodableEntry
from bus.adapters.kafka.port import RebalanceListener
from bus.adapters.kafka.records import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Polled,
    TopicPartition,
    UndecodableRecord,
)
from bus.core.acl_plan import Operation, ResourceType
from bus.errors import Fenced, KafkaOperationFailed, KafkaUnavailable, NotAuthorized, OutcomeUnknown


@dataclass(frozen=True)
class _Callback:
    """A listener call poll must make (outside the lock) before it goes on."""

    kind: str  # "on_lost" | "on_revoked" | "on_assigned"
    partitions: list[TopicPartition]
    member: Member | None = None
    """For `on_revoked`: the member that rejoins once the callback returns."""


class MemoryConsumer:
    def __init__(self, cluster: Cluster, principal: Principal | None, *, group_id: str | None,
                 group_instance_id: str | None, read_committed: bool, from_beginning: bool,
                 max_poll_records: int, session_timeout_ms: int, client_id: str | None) -> None:
        self._cluster = cluster
        self._principal = principal
        self.group_id = group_id
        self.group_instance_id = group_instance_id
        self.read_committed = read_committed
        self._from_beginning = from_beginning
        self._max_poll_records = max_poll_records
        self._session_timeout_ms = session_timeout_ms
        self._client_id = client_id or "memory-consumer"
        self._topics: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._listener: RebalanceListener | None = None
        self._subscribed = False
        self._manual: frozenset[TopicPartition] | None = None
        self._member: Member | None = None
        self._generation = -1
        self._owned: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._rotation = 0
        self._closed = False

    @property
    def member_id(self) -> str | None:
        return self._member.member_id if self._member is not None else None

    # -- subscription ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaOperationFailed("the consumer is closed")

    def _group(self) -> Group:
        if self.group_id is None:
            raise KafkaOperationFailed("this consumer has no group id")
        return self._cluster.group(self.group_id)

    def subscribe(self, topics: Sequence[str] = (), *, pattern: str | None = None,
                  listener: RebalanceListener | None = None) -> None:
        with self._cluster.cond:
            self._check_open()
            if self.group_id is None:
                raise KafkaOperationFailed("subscribe needs a consumer made with a group_id")
            if self._manual is not None:
                raise KafkaOperationFailed("this consumer reads assigned partitions: it cannot also subscribe")
            if bool(topics) == (pattern is not None):
                raise KafkaOperationFailed("subscribe takes topics or a pattern, exactly one of them")
            try:
                self._pattern = re.compile(pattern) if pattern is not None else None
            except re.error as exc:
                raise KafkaOperationFailed(f"invalid subscription pattern {pattern!r}: {exc}") from exc
            self._topics = frozenset(topics)
            self._listener = listener
            self._subscribed = True
            if self._member is not None:  # a new subscription: the group must rebalance
                self._member.topics, self._member.pattern = self._topics, self._pattern
                self._group().start_rebalance(self._cluster.now_ms())
                self._cluster.cond.notify_all()

    def assign(self, partitions: Sequence[TopicPartition],
               offsets: Mapping[TopicPartition, int] | None = None) -> None:
        with self._cluster.cond:
            self._check_open()
            if self._subscribed:
                raise KafkaOperationFailed("this consumer is subscribed: it cannot also assign partitions")
            self._manual = frozenset(TopicPartition(*tp) for tp in partitions)
            self._positions = {tp: p for tp, p in self._positions.items() if tp in self._manual}
            self._paused &= self._manual
        for tp, offset in (offsets or {}).items():
            self.seek(tp, offset)

    def assignment(self) -> set[TopicPartition]:
        with self._cluster.cond:
            return set(self._manual if self._manual is not None else self._owned)

    # -- polling ---------------------------------------------------------------------------

    def poll(self, timeout: float, max_records: int = 500) -> list[Polled]:
        cluster = self._cluster
        limit = min(max_records, self._max_poll_records)
        if limit < 1:
            raise KafkaOperationFailed(f"max_records must be at least 1, not {max_records}")
        deadline = cluster.deadline(timeout)
        while True:
            with cluster.cond:
                self._check_open()
                callback = self._group_step() if cluster.available else None
                if callback is None:
                    records = self._fetch(limit) if cluster.available else []
                    remaining = deadline - time.monotonic()
                    if records or remaining <= 0:
                        return records
                    cluster.cond.wait(remaining)
                    continue
            self._run(callback)

    def _group_step(self) -> _Callback | None:
        """Advance this member through the group protocol; the listener call to make, if any."""
        if not self._subscribed:
            return None
        cluster, group = self._cluster, self._group()
        now = cluster.now_ms()
        if group.step(now, cluster.partition_counts()):
            cluster.cond.notify_all()
        member = self._member
        if member is not None and member.member_id in group.fenced:
            raise Fenced(f"another consumer joined group {group.group_id} with instance id "
                         f"{self.group_instance_id!r}")
        if member is not None and member.member_id not in group.members:
            lost = self._forget()
            self._member = member = None
            if lost:
                return _Callback("on_lost", lost)
        if member is None:
            member = self._join(group, now)
        if group.rebalancing and not member.rejoined:
            if self._owned:  # still ours (and committable) until the callback returns
                return _Callback("on_revoked", sorted(self._owned), member)
            self._rejoin(group, member)
        if not group.rebalancing and self._generation != group.generation:
            self._generation = group.generation
            self._owned = member.assignment
            return _Callback("on_assigned", sorted(self._owned))
        return None

    def _join(self, group: Group, now: int) -> Member:
        cluster = self._cluster
        cluster.authorize(self._principal, ResourceType.GROUP, group.group_id, Operation.READ)
        for topic in sorted(self._topics):
            if topic in cluster.topics and not cluster.permits(self._principal, ResourceType.TOPIC, topic,
                                                                Operation.READ):
                raise NotAuthorized(f"not authorised to read topic {topic}", resource=f"topic {topic}")
        member = Member(
            cluster.next_id(self._client_id), self.group_instance_id, self._topics, self._pattern,
            self._session_timeout_ms,
            may_read=lambda t: cluster.permits(self._principal, ResourceType.TOPIC, t, Operation.DESCRIBE),
        )
        group.join(member, now)
        self._member, self._generation = member, -1
        group.step(now, cluster.partition_counts())
        cluster.cond.notify_all()
        return member

    def _rejoin(self, group: Group, member: Member) -> None:
        group.rejoin(member.member_id)
        group.step(self._cluster.now_ms(), self._cluster.partition_counts())
        self._cluster.cond.notify_all()

    def _forget(self) -> list[TopicPartition]:
        """Give up every owned partition (positions and pauses with them); the ones given up."""
        owned = sorted(self._owned)
        for tp in owned:
            self._positions.pop(tp, None)
            self._paused.discard(tp)
        self._owned = frozenset()
        return owned

    def _run(self, callback: _Callback) -> None:
        try:
            if self._listener is not None:
                getattr(self._listener, callback.kind)(callback.partitions)
        finally:
            member = callback.member
            if member is not None:  # revoked: only now may the partitions go to another member
                with self._cluster.cond:
                    self._forget()
                    group = self._group()
                    if self._member is member and member.member_id in group.members:
                        self._rejoin(group, member)

    def _fetch(self, limit: int) -> list[Polled]:
        cluster = self._cluster
        readable = sorted((self._manual if self._manual is not None else self._owned) - self._paused)
        if not readable:
            return []
        cluster.expire_transactions()
        start = self._rotation % len(readable)
        self._rotation += 1
        out: list[Polled] = []
        for tp in readable[start:] + readable[:start]:
            log = cluster.log(tp)
            if len(out) >= limit or log is None:
                continue
            cluster.authorize(self._principal, ResourceType.TOPIC, tp.topic, Operation.READ)
            pos = self._resolve(tp, log)
            if pos is None:
                continue
            high = log.high(self.read_committed)
            while pos < high and len(out) < limit:
                entry = log.entries[pos]
                if isinstance(entry, UndecodableEntry):
                    out.append(UndecodableRecord(tp.topic, tp.partition, pos, entry.problem))
                elif isinstance(entry, DataEntry) and log.visible(entry, self.read_committed):
                    out.append(entry.record)
                pos += 1
            self._positions[tp] = pos
        return out

    def _resolve(self, tp: TopicPartition, log: PartitionLog) -> int | None:
        """The partition's position, from committed offsets or the reset rule; None while unstable."""
        pos = self._positions.get(tp)
        if pos is None and self.group_id is not None:
            if self._cluster.offsets_pending(self.group_id, tp):
                return None
            pos = self._cluster.group(self.group_id).committed.get(tp)
        if pos is None or not 0 <= pos <= log.end:
            pos = 0 if self._from_beginning else log.high(self.read_committed)
        self._positions[tp] = pos
        return pos

    # -- positions -------------------------------------------------------------------------

    def _assigned_log(self, tp: TopicPartition) -> PartitionLog:
        self._check_open()
        tp = TopicPartition(*tp)
        if tp not in (self._manual if self._manual is not None else self._owned):
            raise KafkaOperationFailed(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")
        log = self._cluster.log(tp)
        if log is None:
            raise KafkaOperationFailed(f"{tp.topic}[{tp.partition}] does not exist")
        return log

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with self._cluster.cond:
            log = self._assigned_log(tp)
            if offset == OFFSET_BEGINNING:
                offset = 0
            elif offset == OFFSET_END:
                offset = log.high(self.read_committed)
            elif offset < 0:
                raise KafkaOperationFailed(f"cannot seek to offset {offset}")
            self._positions[TopicPartition(*tp)] = offset

    def position(self, tp: TopicPartition) -> int:
        with self._cluster.cond:
            log = self._assigned_log(tp)
            pos = self._resolve(TopicPartition(*tp), log)
            if pos is None:
                raise KafkaOperationFailed(f"the committed offset of {tp.topic}[{tp.partition}] is not stable: "
                                           "a transaction holding offsets for it is still open")
            return pos

    def _wait_available(self, timeout: float) -> None:
        self._check_open()
        if not self._cluster.wait_available(timeout):
            raise KafkaUnavailable(f"no broker answered within {timeout:g} s")

    def _described_log(self, tp: TopicPartition) -> PartitionLog:
        self._cluster.authorize(self._principal, ResourceType.TOPIC, tp.topic, Operation.DESCRIBE)
        log = self._cluster.log(tp)
        if log is None:
            raise KafkaOperationFailed(f"{tp.topic}[{tp.partition}] does not exist")
        return log

    def watermarks(self, tp: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
        with self._cluster.cond:
            self._wait_available(timeout)
            log = self._described_log(tp)
            self._cluster.expire_transactions()
            return 0, log.high(self.read_committed)

    def offsets_for_time(self, partitions: Collection[TopicPartition], timestamp_ms: int,
                         timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        with self._cluster.cond:
            self._wait_available(timeout)
            self._cluster.expire_transactions()
            found: dict[TopicPartition, int | None] = {}
            for tp in partitions:
                log = self._described_log(tp)
                entries = log.entries[:log.high(self.read_committed)]
                found[TopicPartition(*tp)] = next(
                    (offset for offset, e in enumerate(entries)
                     if isinstance(e, DataEntry) and e.record.timestamp_ms >= timestamp_ms), None)
            return found

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        with self._cluster.cond:
            self._wait_available(timeout)
            self._cluster.authorize(self._principal, ResourceType.TOPIC, topic, Operation.DESCRIBE)
            found = self._cluster.topics.get(topic)
            return [] if found is None else list(range(found.partitions))

    def topics(self, timeout: float = 10.0) -> set[str]:
        with self._cluster.cond:
            self._wait_available(timeout)
            self._cluster.authenticate(self._principal)
            return {t for t in self._cluster.topics
                    if self._cluster.permits(self._principal, ResourceType.TOPIC, t, Operation.DESCRIBE)}

    # -- offsets ---------------------------------------------------------------------------

    def committed(self, partitions: Collection[TopicPartition],
                  timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        with self._cluster.cond:
            self._wait_available(timeout)
            if self.group_id is None:
                return {TopicPartition(*tp): None for tp in partitions}
            self._cluster.authorize(self._principal, ResourceType.GROUP, self.group_id, Operation.DESCRIBE)
            committed = self._group().committed
            return {TopicPartition(*tp): committed.get(TopicPartition(*tp)) for tp in partitions}

    def commit(self, offsets: Mapping[TopicPartition, int], timeout: float = 10.0) -> None:
        cluster = self._cluster
        with cluster.cond:
            self._check_open()
            meta = self.group_metadata()
            if not offsets:
                return  # nothing to send, as with the real clients
            cluster.authorize(self._principal, ResourceType.GROUP, meta.group_id, Operation.READ)
            for tp in offsets:
                cluster.authorize(self._principal, ResourceType.TOPIC, tp.topic, Operation.READ)
            if any(offset < 0 for offset in offsets.values()):
                raise KafkaOperationFailed(f"offsets must not be negative: {dict(offsets)}")
            if not cluster.wait_available(timeout):
                raise OutcomeUnknown(f"offset commit not answered within {timeout:g} s")
            group = self._group()
            error = group.commit_error(meta)
            if error is not None:
                raise error
            group.committed.update({TopicPartition(*tp): o for tp, o in offsets.items()})

    def group_metadata(self) -> MemoryGroupMetadata:
        with self._cluster.cond:
            if self.group_id is None:
                raise KafkaOperationFailed("a consumer without a group id has no group metadata")
            member = self._member
            return MemoryGroupMetadata(
                self.group_id,
                self._generation if member is not None else -1,
                member.member_id if member is not None else "",
                self.group_instance_id,
            )

    # -- flow control ----------------------------------------------------------------------

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        with self._cluster.cond:
            for tp in partitions:
                self._assigned_log(tp)
            self._paused.update(TopicPartition(*tp) for tp in partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        with self._cluster.cond:
            self._paused.difference_update(TopicPartition(*tp) for tp in partitions)
            self._cluster.cond.notify_all()

    def close(self) -> None:
        """Leave the group (a static member keeps its place until its session times out).

        No listener is called: whatever a service must do before its partitions move,
        it does before `close`.
        """
        with self._cluster.cond:
            if self._closed:
                return
            self._closed = True
            member, self._member = self._member, None
            if member is None or self.group_id is None:
                return
            group = self._group()
            if member.member_id in group.members:
                if member.instance_id is not None or not self._cluster.available:
                    member.departed_ms = self._cluster.now_ms()
                else:
                    group.leave(member.member_id, self._cluster.now_ms())
            self._cluster.cond.notify_all()
