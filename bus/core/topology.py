"""The names of the bus's topics, groups and transactional ids, and how topics are shaped.

One definition: the router, provisioning, readers, the CLI and the tests all
take their names from here, so a rename cannot leave a copy behind.

Co-partitioning: every topic the router reads (`alerts.*`, `acks`) and the
per-partition state it writes (`audit`, `router.changelog`) has the same
number of partitions, `ROUTING_PARTITIONS` by default. Partition *p* of each
of them belongs to the same routing task, so one router owns all of a task's
inputs and state. Partition counts of these topics are fixed once created:
records are placed by `murmur2(key) % partitions`, and the router rejects a
record found anywhere else (`misplaced`).
"""

from __future__ import annotations

from dataclasses import dataclass

ALERT_TOPIC_PREFIX = "alerts."
FEED_TOPIC_PREFIX = "feed."
RECEIPTS_TOPIC_PREFIX = "receipts."

ALERTS_PATTERN = r"^alerts\..+"
"""The router's subscription: every alert topic, present and future."""

ACKS_TOPIC = "acks"
"""Signed acknowledgements (seen, actioned, ...) from recipients, routed to the originator."""
ROUTER_SUBSCRIPTION = r"^(alerts\..+|acks)$"
"""What the routers read: every alert topic and the acknowledgements (one routing task per partition)."""
AUDIT_CHECKPOINTS_TOPIC = "audit.checkpoints"
"""Every signed audit checkpoint of every chain (no alert content): public to members, kept forever."""
AUDIT_TOPIC = "audit"
"""One hash chain per routing task (partition p holds the chain of task p); kept forever."""
AUDIT_CHECKPOINTS_TOPIC = "audit.checkpoints"
"""Signed audit checkpoints, readable by every member; one partition (one order), kept forever."""
DLQ_TOPIC = "dlq.rejected"
"""Every record the router did not route, with its reason."""
CHANGELOG_TOPIC = "router.changelog"
"""The routers' per-task state (replay window, decisions), restored on assignment."""

ROUTER_GROUP = "bus-router"
ROUTER_TRANSACTIONAL_PREFIX = "bus-router"

ROUTING_PARTITIONS = 6
"""Partitions of every co-partitioned topic (alerts.*, acks, audit, router.changelog)."""
FEED_PARTITIONS = 6
RECEIPTS_PARTITIONS = 1
"""Receipts are few and read by one member: one partition keeps them in routing order."""
AUDIT_CHECKPOINTS_PARTITIONS = 1

DAY_MS = 24 * 3600 * 1000


def alert_topic(alert_type: str) -> str:
    """The topic an originator publishes an alert type to."""
    return f"{ALERT_TOPIC_PREFIX}{alert_type}"


def feed_topic(member_id: str) -> str:
    """The default feed topic of a partner (a policy may name another under `feed.`)."""
    return f"{FEED_TOPIC_PREFIX}{member_id.lower()}"


def receipts_topic(member_id: str) -> str:
    """Where the router tells a producer what became of its records."""
    return f"{RECEIPTS_TOPIC_PREFIX}{member_id.lower()}"


def is_co_partitioned(topic: str) -> bool:
    """True for the topics whose partition count is fixed once created (see the module docstring):
    `alerts.*`, `acks`, `audit` and `router.changelog`. Provisioning never changes their count."""
    return topic.startswith(ALERT_TOPIC_PREFIX) or topic in (ACKS_TOPIC, AUDIT_TOPIC, CHANGELOG_TOPIC)


def alert_type_of_topic(topic: str) -> str | None:
    """`alerts.suspicious-container` -> `suspicious-container`; None for other topics."""
    return topic.removeprefix(ALERT_TOPIC_PREFIX) if topic.startswith(ALERT_TOPIC_PREFIX) else None


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the bus wants it: partitions, replication and configs."""

    name: str
    partitions: int = ROUTING_PARTITIONS
    replication: int = 1
    config: tuple[tuple[str, str], ...] = ()

    @property
    def config_map(self) -> dict[str, str]:
        return dict(self.config)


@dataclass(frozen=True)
class Replication:
    """Replication factor and min.insync.replicas for a cluster of `brokers` nodes.

    The rule: replication min(3, brokers), and min.insync.replicas 2 once there are
    at least 3 brokers, so one node can die without stopping writes or losing data.
    """

    factor: int
    min_insync: int

    @classmethod
    def for_cluster(cls, brokers: int) -> Replication:
        brokers = max(1, brokers)
        return cls(factor=min(3, brokers), min_insync=2 if brokers >= 3 else 1)


def _common(replication: Replication) -> tuple[tuple[str, str], ...]:
    return (("min.insync.replicas", str(replication.min_insync)),)


def core_topics(
    alert_types: tuple[str, ...] | list[str],
    replication: Replication,
    partitions: int = ROUTING_PARTITIONS,
) -> list[TopicSpec]:
    """The topics the bus needs whatever the partners: alerts, acks, audit (and its public
    checkpoints), DLQ, router state."""
    common = _common(replication)
    factor = replication.factor
    return [
        *(TopicSpec(alert_topic(t), partitions, factor, common) for t in alert_types),
        TopicSpec(ACKS_TOPIC, partitions, factor, common),
        TopicSpec(AUDIT_TOPIC, partitions, factor, (*common, ("retention.ms", "-1"))),
        TopicSpec(AUDIT_CHECKPOINTS_TOPIC, AUDIT_CHECKPOINTS_PARTITIONS, factor,
                  (*common, ("retention.ms", "-1"))),
        TopicSpec(DLQ_TOPIC, partitions, factor, (*common, ("retention.ms", str(30 * DAY_MS)))),
        TopicSpec(CHANGELOG_TOPIC, partitions, factor,
                  (*common, ("cleanup.policy", "compact,delete"), ("retention.ms", str(14 * DAY_MS)))),
    ]


def feed_topic_spec(topic: str, replication: Replication, partitions: int = FEED_PARTITIONS) -> TopicSpec:
    return TopicSpec(topic, partitions, replication.factor, _common(replication))


def receipts_topic_spec(topic: str, replication: Replication) -> TopicSpec:
    return TopicSpec(topic, RECEIPTS_PARTITIONS, replication.factor,
                     (*_common(replication), ("retention.ms", str(30 * DAY_MS))))


def member_group(user: str | None, name: str) -> str:
    """A consumer group in which one of a member's tools keeps its place (`bus tail --group NAME`).

    On a secured cluster a member may only use groups under its own prefix, so the group is
    `<user>.<name>` (a name already under that prefix is taken as it is); without a user (a
    development broker) it is `name`.
    """
    if user is None or name.startswith(f"{user}."):
        return name
    return f"{user}.{name}"


def console_group(user: str) -> str:
    """The consumer group id the liaison officer's console gives its feed reader.

    Under the member's own group prefix (`<user>.`, which provisioning lets it use): the
    console assigns its partitions itself and never joins the group or commits to it (its
    feed index keeps the positions), but Kafka clients still look a consumer's group up,
    and a secured cluster refuses any group outside the member's prefix.
    """
    return f"{user}.console"


