"""Consumer groups: members, the eager rebalance protocol, range assignment, committed offsets.

The protocol is the one the real clients run by default (range, eager):

- a change (a member joins, leaves or times out, a matching topic appears) starts a
  rebalance; each member learns of it at its next `poll`, gives up *all* its
  partitions (`on_revoked`) and rejoins;
- only when every member has rejoined does the group form a new generation and hand
  out partitions (`on_assigned`), so a partition is never read by two members at once;
- a member that does not rejoin within the rebalance timeout is dropped, and learns
  at its next poll that its partitions were lost (`on_lost`);
- a static member (`group_instance_id`) that closes keeps its partitions until its
  session times out; restarted with the same instance id within that time it gets them
  back without any rebalance. A second live member with the same instance id fences
  the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from bus.adapters.kafka.records import TopicPartition
from bus.errors import Fenced, KafkaError, KafkaOperationFailed

REBALANCE_TIMEOUT_MS = 300_000
"""max.poll.interval.ms's default: how long a rebalance waits for a member to rejoin."""


@dataclass(frozen=True, slots=True)
class MemoryGroupMetadata:
    """What a transaction commits offsets against (KIP-447): stale metadata is refused."""

    group_id: str
    generation: int
    member_id: str
    instance_id: str | None


@dataclass(eq=False)
class Member:
    member_id: str
    instance_id: str | None
    topics: frozenset[str]
    pattern: re.Pattern[str] | None
    session_timeout_ms: int
    may_read: Callable[[str], bool] = lambda _topic: True
    """Whether this member's principal may see a topic (pattern subscriptions skip the others)."""
    assignment: frozenset[TopicPartition] = frozenset()
    rejoined: bool = True
    departed_ms: int | None = None
    """When a static member closed (it keeps its place until its session times out)."""

    def subscribes(self, topic: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(topic) is not None and self.may_read(topic)
        return topic in self.topics

    def same_subscription(self, other: Member) -> bool:
        return self.topics == other.topics and (
            (self.pattern.pattern if self.pattern else None) == (other.pattern.pattern if other.pattern else None)
        )


def range_assignment(members: Sequence[Member], topics: Mapping[str, int]) -> dict[str, frozenset[TopicPartition]]:
    """Kafka's RangeAssignor: per topic, consecutive partition ranges over the sorted members.

    Members are ordered by instance id (static members first), then member id, and the
    same order is used for every topic: members subscribed to co-partitioned topics get
    the same partition numbers of each.
    """
    ordered = sorted(members, key=lambda m: (m.instance_id is None, m.instance_id or "", m.member_id))
    result: dict[str, set[TopicPartition]] = {m.member_id: set() for m in ordered}
    for topic in sorted(topics):
        readers = [m for m in ordered if m.subscribes(topic)]
        if not readers:
            continue
        per, extra = divmod(topics[topic], len(readers))
        start = 0
        for i, member in enumerate(readers):
            count = per + (1 if i < extra else 0)
            result[member.member_id].update(TopicPartition(topic, p) for p in range(start, start + count))
            start += count
    return {member_id: frozenset(tps) for member_id, tps in result.items()}


@dataclass(eq=False)
class Group:
    group_id: str
    members: dict[str, Member] = field(default_factory=dict)
    generation: int = 0
    rebalancing: bool = False
    rebalance_started_ms: int = 0
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    fenced: set[str] = field(default_factory=set)
    """Member ids replaced by a newer member with the same instance id."""

    def static_member(self, instance_id: str) -> Member | None:
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def join(self, member: Member, now_ms: int) -> Member | None:
        """Add a member; return the member it replaced (same instance id), if any."""
        old = self.static_member(member.instance_id) if member.instance_id else None
        if old is not None:
            del self.members[old.member_id]
            self.fenced.add(old.member_id)
            if old.same_subscription(member) and not self.rebalancing:
                member.assignment = old.assignment  # static membership: back without a rebalance
            else:
                self.start_rebalance(now_ms)
        else:
            self.start_rebalance(now_ms)
        member.rejoined = True  # it joins now, holding nothing
        self.members[member.member_id] = member
        return old

    def leave(self, member_id: str, now_ms: int) -> None:
        if self.members.pop(member_id, None) is not None:
            self.start_rebalance(now_ms)

    def start_rebalance(self, now_ms: int) -> None:
        if not self.rebalancing:
            self.rebalancing = True
            self.rebalance_started_ms = now_ms
            for m in self.members.values():
                m.rejoined = False

    def rejoin(self, member_id: str) -> None:
        member = self.members.get(member_id)
        if member is not None:
            member.rejoined = True
            member.assignment = frozenset()

    def step(self, now_ms: int, topics: Mapping[str, int]) -> bool:
        """Expire members whose time is up and finish a rebalance everyone rejoined; True if anything changed."""
        changed = False
        for m in list(self.members.values()):
            session_over = m.departed_ms is not None and now_ms - m.departed_ms >= m.session_timeout_ms
            too_late = (self.rebalancing and not m.rejoined
                        and now_ms - self.rebalance_started_ms >= REBALANCE_TIMEOUT_MS)
            if session_over or too_late:
                self.leave(m.member_id, now_ms)
                changed = True
        if self.rebalancing and all(m.rejoined for m in self.members.values()):
            self.generation += 1
            self.rebalancing = False
            assigned = range_assignment(list(self.members.values()), topics)
            for m in self.members.values():
                m.assignment = assigned[m.member_id]
            changed = True
        return changed

    def topics_changed(self, names: Collection[str], now_ms: int) -> None:
        """Topics were created or grew: members subscribed to them need a new assignment."""
        if any(m.subscribes(t) for m in self.members.values() for t in names):
            self.start_rebalance(now_ms)

    def commit_error(self, meta: MemoryGroupMetadata) -> KafkaError | None:
        """Why the group refuses an offset commit from this member and generation (None: accepted)."""
        if meta.generation < 0 and not meta.member_id:
            if self.members:
                return KafkaOperationFailed(
                    f"group {self.group_id} has active members: a consumer outside it may not commit its offsets")
            return None
        if meta.member_id in self.fenced:
            return Fenced(f"another consumer joined group {self.group_id} with instance id {meta.instance_id!r}")
        if meta.member_id not in self.members:
            return KafkaOperationFailed(
                f"this consumer is no longer a member of group {self.group_id} (it left or timed out): "
                "its partitions may belong to another member now")
        if meta.generation != self.generation:
            return KafkaOperationFailed(
                f"group {self.group_id} rebalanced (generation {meta.generation}, now {self.generation}): "
                "the offsets are refused")
        return None
