"""Who may read and write what on the broker: the desired state, and the diff to reach it.

Policy filtering means nothing if a partner can simply read another partner's feed, so
isolation is enforced by the broker itself (SCRAM users + ACLs). This module is pure: it
turns the federation directory and the routing policy into topics, users and ACL bindings,
and compares that with what a cluster reports. `bus.services.provision` does the I/O.

The design (also in docs/security.md):

- user name = member id lower-cased (`NL-CUSTOMS` -> `nl-customs`), so the user, its
  feed (`feed.nl-customs`), its receipts (`receipts.nl-customs`) and its consumer-group
  prefix (`nl-customs.`) read alike; service users are `svc-router` and `svc-auditor`.
- a member WRITEs only `alerts.<type>` for the types it may publish and `acks`; READs
  only its own feed, its own receipts and the public `audit.checkpoints`; joins only
  consumer groups named `<user>.*`. Kafka >= 3 lets a producer with WRITE on some topic
  be idempotent without the cluster IDEMPOTENT_WRITE grant.
- the router READs `alerts.*` and `acks`; WRITEs (and CREATEs) `feed.*`; WRITEs
  `receipts.*`, `audit`, `audit.checkpoints`, `dlq.rejected` and `router.changelog`; READs
  back `router.changelog` and `audit` when it takes over a task; owns its group
  (`bus-router`) and the transactional ids under its prefix (`bus-router*`); both follow
  `bus router run --group/--transactional-prefix` via `BusNames`.
- only the auditor (and the router) READs `audit`; nobody but the router WRITEs a feed,
  a receipts topic, the audit trail or its checkpoints.

Partition counts of the co-partitioned topics (`alerts.*`, `acks`, `audit`,
`router.changelog`) are fixed once created (`bus.core.topology`): a plan that would
change one is an error (`Plan.errors`), never a change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bus.core import topology
from bus.errors import PlanError

ROUTER_USER = "svc-router"
AUDITOR_USER = "svc-auditor"
ROUTER_GROUP = topology.ROUTER_GROUP
ROUTER_TRANSACTIONAL_PREFIX = topology.ROUTER_TRANSACTIONAL_PREFIX
GROUP_SEPARATOR = "."
"""A principal's groups are `<user>.<anything>`; ids hold no '.', so prefixes never overlap."""

_USER_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")




class ResourceType(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    CLUSTER = "CLUSTER"


class PatternType(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    ALL = "ALL"


class Permission(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


class Role(StrEnum):
    MEMBER = "member"
    ROUTER = "router"
    AUDITOR = "auditor"


@dataclass(frozen=True, order=True)
class AclBinding:
    """One Kafka ACL, in the broker's own terms (principal `User:<name>`)."""

    principal: str
    resource_type: ResourceType
    pattern: PatternType
    name: str
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def describe(self, operations: Sequence[Operation] = ()) -> str:
        """`READ topic feed.x`, `WRITE topic feed.*` (several operations: `READ, DESCRIBE ...`)."""
        ops = ", ".join(operations or [self.operation])
        pattern = "" if self.pattern is PatternType.LITERAL else "*"
        verb = "" if self.permission is Permission.ALLOW else f"{self.permission} "
        return f"{verb}{ops} {self.resource_type.lower()} {self.name}{pattern}"


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    replication: int
    config: tuple[tuple[str, str], ...] = ()

    @property
    def config_map(self) -> dict[str, str]:
        return dict(self.config)


@dataclass(frozen=True)
class UserPlan:
    name: str
    role: Role
    member_id: str | None = None

    @property
    def principal(self) -> str:
        return principal(self.name)


@dataclass(frozen=True)
class BusNames:
    """Names the grants refer to: the topics of `bus.core.topology`, and the router's group and
    transactional-id prefix (which follow `bus router run --group/--transactional-id`)."""

    alert_prefix: str = topology.ALERT_TOPIC_PREFIX
    feed_prefix: str = topology.FEED_TOPIC_PREFIX
    receipts_prefix: str = topology.RECEIPTS_TOPIC_PREFIX
    acks: str = topology.ACKS_TOPIC
    audit: str = topology.AUDIT_TOPIC
    audit_checkpoints: str = topology.AUDIT_CHECKPOINTS_TOPIC
    dlq: str = topology.DLQ_TOPIC
    changelog: str = topology.CHANGELOG_TOPIC
    router_group: str = ROUTER_GROUP
    router_transactional_prefix: str = ROUTER_TRANSACTIONAL_PREFIX

    def receipts_topic(self, user: str) -> str:
        """Where the router writes a member's receipts (`receipts.<user>`)."""
        return self.receipts_prefix + user

    def co_partitioned(self, topic: str) -> bool:
        """A topic whose partition count must never change (see `bus.core.topology`)."""
        return topic.startswith(self.alert_prefix) or topic in (self.acks, self.audit, self.changelog)


@dataclass(frozen=True)
class DesiredState:
    topics: tuple[TopicPlan, ...]
    users: tuple[UserPlan, ...]
    acls: frozenset[AclBinding]
    names: BusNames = field(default_factory=BusNames)
    notes: tuple[str, ...] = ()

    @property
    def principals(self) -> frozenset[str]:
        return frozenset(u.principal for u in self.users)

    def acls_for(self, user: str) -> list[AclBinding]:
        p = principal(user)
        return sorted(a for a in self.acls if a.principal == p)

    def owns_topic(self, name: str) -> bool:
        """True for every topic whose access the bus alone decides."""
        n = self.names
        return (
            name.startswith((n.alert_prefix, n.feed_prefix, n.receipts_prefix))
            or name in (n.acks, n.audit, n.audit_checkpoints, n.dlq, n.changelog)
            or any(t.name == name for t in self.topics)
        )


class MemberLike(Protocol):
    """What the plan needs of a federation directory member."""

    @property
    def id(self) -> str: ...
    @property
    def may_publish(self) -> Sequence[str]: ...


class TopicLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def replication(self) -> int: ...
    @property
    def config(self) -> tuple[tuple[str, str], ...]: ...


def user_name(member_id: str) -> str:
    """The SCRAM user of a member: its id lower-cased (`NL-CUSTOMS` -> `nl-customs`)."""
    return member_id.lower()


def principal(user: str) -> str:
    return f"User:{user}"


def group_prefix(user: str) -> str:
    return user + GROUP_SEPARATOR


# -- desired state ---------------------------------------------------------------------------


def _grant(user: str, rtype: ResourceType, name: str, ops: Iterable[Operation],
           prefixed: bool = False) -> list[AclBinding]:
    pattern = PatternType.PREFIXED if prefixed else PatternType.LITERAL
    return [AclBinding(principal(user), rtype, pattern, name, op) for op in ops]


_TOPIC, _GROUP, _TXN = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
_READ = (Operation.READ, Operation.DESCRIBE)
_WRITE = (Operation.WRITE, Operation.DESCRIBE)
_READ_WRITE = (Operation.WRITE, Operation.READ, Operation.DESCRIBE)


def member_acls(user: str, publish_topics: Iterable[str], feed: str | None,
                names: BusNames | None = None) -> list[AclBinding]:
    """WRITE its permitted alert topics and `acks`; READ its own feed (if the policy gives it
    one), its own receipts and the public audit checkpoints; groups under its own prefix."""
    names = names or BusNames()
    acls: list[AclBinding] = []
    for topic in sorted({*publish_topics, names.acks}):
        acls += _grant(user, _TOPIC, topic, _WRITE)
    if feed is not None:
        acls += _grant(user, _TOPIC, feed, _READ)
    acls += _grant(user, _TOPIC, names.receipts_topic(user), _READ)
    acls += _grant(user, _TOPIC, names.audit_checkpoints, _READ)
    acls += _grant(user, _GROUP, group_prefix(user), [Operation.READ], prefixed=True)
    return acls


def router_acls(names: BusNames, user: str = ROUTER_USER) -> list[AclBinding]:
    """Everything the router does, and nothing more."""
    return [
        *_grant(user, _TOPIC, names.alert_prefix, _READ, prefixed=True),
        *_grant(user, _TOPIC, names.acks, _READ),
        # CREATE: a reloaded policy may name a new partner before provisioning runs again.
        *_grant(user, _TOPIC, names.feed_prefix, (*_WRITE, Operation.CREATE), prefixed=True),
        *_grant(user, _TOPIC, names.receipts_prefix, _WRITE, prefixed=True),
        *_grant(user, _TOPIC, names.audit, _READ_WRITE),
        *_grant(user, _TOPIC, names.audit_checkpoints, _WRITE),
        *_grant(user, _TOPIC, names.dlq, _WRITE),
        *_grant(user, _TOPIC, names.changelog, _READ_WRITE),
        *_grant(user, _GROUP, names.router_group, [Operation.READ]),
        *_grant(user, _TXN, names.router_transactional_prefix, _WRITE, prefixed=True),
    ]


def auditor_acls(names: BusNames, user: str = AUDITOR_USER) -> list[AclBinding]:
    return [
        *_grant(user, _TOPIC, names.audit, _READ),
        *_grant(user, _TOPIC, names.audit_checkpoints, _READ),
        *_grant(user, _GROUP, group_prefix(user), [Operation.READ], prefixed=True),
    ]


def desired_state(
    members: Iterable[MemberLike],
    feeds: Mapping[str, str],
    topics: Iterable[TopicLike],
    names: BusNames | None = None,
) -> DesiredState:
    """Users and grants for every directory member plus the two service users.

    `feeds` maps partner id -> feed topic (from the policy); `topics` are the topic specs
    to create (bus topics, feeds and receipts). A member without a feed reads only its
    receipts and the audit checkpoints; a feed without a member is still created (the router
    writes it) but nobody can read it.
    """
    names = names or BusNames()
    members = sorted(members, key=lambda m: m.id)
    notes: list[str] = []
    users: list[UserPlan] = []
    acls: list[AclBinding] = []
    taken = {ROUTER_USER: "service user", AUDITOR_USER: "service user"}
    for topic in feeds.values():
        if not topic.startswith(names.feed_prefix):
            raise PlanError(f"feed topic {topic!r} is outside {names.feed_prefix}*: only the "
                            "router may write there and only partners read it")
    for m in members:
        user = user_name(m.id)
        if not _USER_RE.fullmatch(user):
            raise PlanError(f"member id {m.id!r} cannot be a user name")
        if user in taken:
            raise PlanError(f"member {m.id} would get user {user!r}, already the {taken[user]}")
        taken[user] = f"user of member {m.id}"
        if names.router_group.startswith(group_prefix(user)):
            raise PlanError(f"router group {names.router_group!r} is under {m.id}'s group prefix "
                            f"{group_prefix(user)!r}: that member could join it")
        publish = [names.alert_prefix + t for t in m.may_publish]
        feed = feeds.get(m.id)
        if feed is None:
            notes.append(f"{m.id} is not a partner in the policy: it gets no feed to read")
        users.append(UserPlan(user, Role.MEMBER, m.id))
        acls += member_acls(user, publish, feed, names)
    member_ids = {m.id for m in members}
    for partner_id in sorted(set(feeds) - member_ids):
        notes.append(f"partner {partner_id} is not in the federation directory: "
                     f"{feeds[partner_id]} is created but nobody may read it")
    users += [UserPlan(ROUTER_USER, Role.ROUTER), UserPlan(AUDITOR_USER, Role.AUDITOR)]
    acls += router_acls(names) + auditor_acls(names)
    topic_plans = tuple(
        TopicPlan(t.name, t.partitions, t.replication, tuple(sorted(t.config)))
        for t in sorted(topics, key=lambda t: t.name)
    )
    if len({t.name for t in topic_plans}) != len(topic_plans):
        raise PlanError("the same topic is planned twice")
    return DesiredState(topic_plans, tuple(users), frozenset(acls), names, tuple(notes))


_IMPLIES_DESCRIBE = {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}


def allows(acls: Iterable[AclBinding], user: str, resource_type: ResourceType, name: str,
           operation: Operation) -> bool:
    """Kafka's verdict for one request under these bindings (DENY wins, no ACL = denied).

    Mirrors StandardAuthorizer for the cases the bus uses: LITERAL (and `*`) and PREFIXED
    patterns, ALL, and READ/WRITE/DELETE/ALTER implying DESCRIBE. Lets the documented
    design be checked without a broker.
    """
    who = principal(user)

    def matches(a: AclBinding) -> bool:
        if a.principal not in (who, "User:*") or a.resource_type is not resource_type:
            return False
        prefixed = a.pattern is PatternType.PREFIXED
        if not (name.startswith(a.name) if prefixed else a.name in (name, "*")):
            return False
        if a.operation in (operation, Operation.ALL):
            return True
        return (operation is Operation.DESCRIBE and a.permission is Permission.ALLOW
                and a.operation in _IMPLIES_DESCRIBE)

    relevant = [a for a in acls if matches(a)]
    if any(a.permission is Permission.DENY for a in relevant):
        return False
    return any(a.permission is Permission.ALLOW for a in relevant)


# -- current state and the diff --------------------------------------------------------------


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication: int
    config: Mapping[str, str]
    """Current values of (at least) the keys the plan sets."""


@dataclass(frozen=True)
class CurrentState:
    topics: Mapping[str, TopicState]
    users: frozenset[str]
    """Users that have a SCRAM-SHA-512 credential."""
    acls: frozenset[AclBinding]


class ChangeKind(StrEnum):
    CREATE_TOPIC = "create topic"
    ADD_PARTITIONS = "add partitions"
    ALTER_CONFIG = "alter topic config"
    CREATE_USER = "create user"
    ROTATE_PASSWORD = "rotate password"
    CREATE_ACL = "create acl"
    DELETE_ACL = "delete acl"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    subject: str
    """Topic name, user name or principal."""
    detail: str = ""
    topic: TopicPlan | None = None
    acl: AclBinding | None = None
    config: tuple[tuple[str, str], ...] = ()
    """For ALTER_CONFIG: the keys to set and their new values."""


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    """What the plan refuses to do (e.g. change the partition count of a co-partitioned topic):
    provisioning applies nothing while there is one."""

    @property
    def empty(self) -> bool:
        return not self.changes

    def of(self, *kinds: ChangeKind) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]

    def users_needing_password(self) -> list[str]:
        return [c.subject for c in self.of(ChangeKind.CREATE_USER, ChangeKind.ROTATE_PASSWORD)]


def _norm(key: str, value: str | None) -> str | None:
    """Lists such as cleanup.policy compare as sets."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    return ",".join(sorted(parts)) if len(parts) > 1 else value.strip()


def _topic_changes(desired: DesiredState, current: CurrentState) -> tuple[list[Change], list[str], list[str]]:
    changes: list[Change] = []
    warnings: list[str] = []
    errors: list[str] = []
    for spec in desired.topics:
        state = current.topics.get(spec.name)
        if state is None:
            cfg = ", ".join(f"{k}={v}" for k, v in spec.config)
            changes.append(Change(
                ChangeKind.CREATE_TOPIC, spec.name,
                f"{spec.partitions} partitions, replication {spec.replication}"
                + (f", {cfg}" if cfg else ""), topic=spec))
            continue
        if state.partitions != spec.partitions and desired.names.co_partitioned(spec.name):
            errors.append(
                f"{spec.name} has {state.partitions} partitions, the plan says {spec.partitions}: the "
                "partition counts of alerts.*, acks, audit and router.changelog are fixed once created "
                "(records are placed by murmur2(key) % partitions, and a router task owns partition p of "
                f"each); provision with --partitions {state.partitions}, or recreate the topics")
        elif state.partitions < spec.partitions:
            changes.append(Change(
                ChangeKind.ADD_PARTITIONS, spec.name,
                f"{state.partitions} -> {spec.partitions} (new keys map to other partitions)",
                topic=spec))
        elif state.partitions > spec.partitions:
            warnings.append(f"{spec.name} has {state.partitions} partitions, the plan says "
                            f"{spec.partitions}: Kafka cannot shrink a topic; left as is")
        if state.replication != spec.replication:
            warnings.append(f"{spec.name} has replication {state.replication}, the plan says "
                            f"{spec.replication}: needs a partition reassignment; left as is")
        differing = [(k, v) for k, v in spec.config
                     if _norm(k, state.config.get(k)) != _norm(k, v)]
        if differing:
            detail = ", ".join(f"{k}: {state.config.get(k)} -> {v}" for k, v in differing)
            changes.append(Change(ChangeKind.ALTER_CONFIG, spec.name, detail,
                                  topic=spec, config=tuple(differing)))
    return changes, warnings, errors


def _deletable(acl: AclBinding, desired: DesiredState, protected: frozenset[str]) -> bool:
    """Stale grants of users we manage, and any stale ALLOW on a topic the bus owns.

    DENY bindings are never removed: they can only take access away.
    """
    if acl.permission is Permission.DENY or acl.principal in protected:
        return False
    if acl.principal in desired.principals:
        return True
    return acl.resource_type is ResourceType.TOPIC and desired.owns_topic(acl.name)


def _wide_grant(acl: AclBinding) -> bool:
    return acl.resource_type is ResourceType.TOPIC and acl.permission is Permission.ALLOW and (
        (acl.pattern is PatternType.LITERAL and acl.name == "*")
        or (acl.pattern is PatternType.PREFIXED and acl.name == "")
    )


def diff(
    desired: DesiredState,
    current: CurrentState,
    *,
    rotate_passwords: bool = False,
    protected_principals: Iterable[str] = ("User:admin", "User:ANONYMOUS"),
) -> Plan:
    """The changes that turn `current` into `desired`; empty when they already agree."""
    protected = frozenset(protected_principals)
    changes, warnings, errors = _topic_changes(desired, current)
    for user in desired.users:
        if user.name not in current.users:
            who = f"{user.role} {user.member_id}" if user.member_id else str(user.role)
            changes.append(Change(ChangeKind.CREATE_USER, user.name, f"SCRAM-SHA-512 ({who})"))
        elif rotate_passwords:
            changes.append(Change(ChangeKind.ROTATE_PASSWORD, user.name, "SCRAM-SHA-512"))
    for acl in sorted(desired.acls - current.acls):
        changes.append(Change(ChangeKind.CREATE_ACL, acl.principal, acl.describe(), acl=acl))
    stale = sorted(a for a in current.acls - desired.acls if _deletable(a, desired, protected))
    for acl in stale:
        changes.append(Change(ChangeKind.DELETE_ACL, acl.principal, acl.describe(), acl=acl))
    removed = sorted({a.principal for a in stale} - desired.principals)
    for p in removed:
        name = p.removeprefix("User:")
        if name in current.users:
            warnings.append(f"{name} lost its grants on bus topics but still has a SCRAM "
                            "credential; delete it if the member has left")
    for acl in sorted(current.acls):
        if _wide_grant(acl) and acl.principal not in protected:
            warnings.append(f"{acl.principal} is granted {acl.operation} on every topic: "
                            "that bypasses partner isolation")
    return Plan(tuple(changes), tuple([*desired.notes, *warnings]), tuple(errors))


__all__ = [
    "AUDITOR_USER",
    "ROUTER_GROUP",
    "ROUTER_TRANSACTIONAL_PREFIX",
    "ROUTER_USER",
    "AclBinding",
    "BusNames",
    "Change",
    "ChangeKind",
    "CurrentState",
    "DesiredState",
    "Operation",
    "PatternType",
    "Permission",
    "Plan",
    "PlanError",
    "ResourceType",
    "Role",
    "TopicPlan",
    "TopicState",
    "UserPlan",
    "allows",
    "desired_state",
    "diff",
    "group_prefix",
    "principal",
    "user_name",
]
