"""The ACL plan: the documented design, as data, and the diff that makes provisioning idempotent."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from bus.core import acl_plan as ap
from bus.core.acl_plan import (
    AclBinding,
    ChangeKind,
    CurrentState,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    TopicState,
)

TOPIC, GROUP, TXN, CLUSTER = (ResourceType.TOPIC, ResourceType.GROUP,
                              ResourceType.TRANSACTIONAL_ID, ResourceType.CLUSTER)
R, W, D, C = Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.CREATE


@dataclass(frozen=True)
class M:
    id: str
    may_publish: tuple[str, ...] = ()


@dataclass(frozen=True)
class T:
    name: str
    partitions: int = 6
    replication: int = 1
    config: tuple[tuple[str, str], ...] = ()


MEMBERS = [
    M("NL-CUSTOMS", ("suspicious-container", "corruption-indicator", "operation-notice")),
    M("PORT-ROTTERDAM", ("suspicious-container", "corruption-indicator")),
    M("EUROPOL", ("operation-notice",)),
    M("TERMINAL-OPERATOR-X", ("suspicious-container",)),
]
FEEDS = {"NL-CUSTOMS": "feed.nl-customs", "PORT-ROTTERDAM": "feed.port-rotterdam",
         "EUROPOL": "feed.europol"}
TOPICS = [
    T("alerts.suspicious-container"), T("alerts.corruption-indicator"), T("alerts.operation-notice"),
    T("acks"), T("audit", 6, 1, (("retention.ms", "-1"), ("min.insync.replicas", "1"))),
    T("audit.checkpoints", 1, 1, (("retention.ms", "-1"),)),
    T("dlq.rejected"), T("router.changelog", config=(("cleanup.policy", "compact,delete"),)),
    *(T(f) for f in FEEDS.values()),
    *(T(f"receipts.{m.id.lower()}", 1) for m in MEMBERS),
]


@pytest.fixture
def desired() -> ap.DesiredState:
    return ap.desired_state(MEMBERS, FEEDS, TOPICS)


def in_sync(desired: ap.DesiredState) -> CurrentState:
    return CurrentState(
        topics={t.name: TopicState(t.partitions, t.replication, dict(t.config))
                for t in desired.topics},
        users=frozenset(u.name for u in desired.users),
        acls=desired.acls,
    )


def can(desired: ap.DesiredState, user: str, rtype: ResourceType, name: str, op: Operation) -> bool:
    return ap.allows(desired.acls, user, rtype, name, op)


# -- users -------------------------------------------------------------------------------------


def test_one_user_per_member_lowercased_plus_services(desired):
    assert [u.name for u in desired.users] == [
        "europol", "nl-customs", "port-rotterdam", "terminal-operator-x", "svc-router", "svc-auditor"]
    assert {u.role for u in desired.users} == set(ap.Role)
    assert desired.principals >= {"User:nl-customs", "User:svc-router"}


def test_a_member_cannot_take_a_service_users_name():
    with pytest.raises(ap.PlanError, match="svc-router"):
        ap.desired_state([M("SVC-ROUTER")], {}, [])


def test_feeds_must_live_under_the_feed_prefix():
    with pytest.raises(ap.PlanError, match="outside feed"):
        ap.desired_state(MEMBERS, {**FEEDS, "EUROPOL": "audit"}, TOPICS)


def test_the_router_grants_follow_its_configured_group_and_transactional_ids():
    names = ap.BusNames(router_group="ports-router", router_transactional_prefix="ports-router-tx")
    state = ap.desired_state(MEMBERS, FEEDS, TOPICS, names)
    assert can(state, "svc-router", GROUP, "ports-router", R)
    assert can(state, "svc-router", TXN, "ports-router-tx-1", W)
    assert not can(state, "svc-router", GROUP, "bus-router", R)
    assert not can(state, "svc-router", TXN, "bus-router-1", W)
    assert not any(can(state, ap.user_name(m.id), GROUP, "ports-router", R) for m in MEMBERS)


def test_a_router_group_a_member_could_join_is_refused():
    with pytest.raises(ap.PlanError, match=r"nl-customs.*could join"):
        ap.desired_state(MEMBERS, FEEDS, TOPICS, ap.BusNames(router_group="nl-customs.router"))


def test_members_without_feed_and_partners_without_member_are_noted():
    state = ap.desired_state(MEMBERS, {**FEEDS, "EMPACT-SYN": "feed.empact-syn"}, TOPICS)
    notes = " | ".join(state.notes)
    assert "TERMINAL-OPERATOR-X is not a partner" in notes
    assert "partner EMPACT-SYN is not in the federation directory" in notes
    assert "User:empact-syn" not in state.principals


# -- the design, cell by cell ----------------------------------------------------------------


DESIGN = [
    # (user, resource type, name, operation, allowed)
    ("nl-customs", TOPIC, "alerts.operation-notice", W, True),
    ("port-rotterdam", TOPIC, "alerts.corruption-indicator", W, True),
    ("port-rotterdam", TOPIC, "alerts.operation-notice", W, False),
    ("terminal-operator-x", TOPIC, "alerts.corruption-indicator", W, False),
    ("nl-customs", TOPIC, "alerts.suspicious-container", R, False),
    ("nl-customs", TOPIC, "acks", W, True),
    ("europol", TOPIC, "acks", W, True),
    ("nl-customs", TOPIC, "acks", R, False),
    ("nl-customs", TOPIC, "receipts.nl-customs", R, True),
    ("nl-customs", TOPIC, "receipts.nl-customs", W, False),
    ("nl-customs", TOPIC, "receipts.europol", R, False),
    ("nl-customs", TOPIC, "receipts.europol", D, False),
    ("terminal-operator-x", TOPIC, "receipts.terminal-operator-x", R, True),
    ("terminal-operator-x", GROUP, "terminal-operator-x.receipts", R, True),
    ("nl-customs", TOPIC, "audit.checkpoints", R, True),
    ("nl-customs", TOPIC, "audit.checkpoints", W, False),
    ("nl-customs", TOPIC, "router.changelog", R, False),
    ("nl-customs", TOPIC, "feed.nl-customs", R, True),
    ("nl-customs", TOPIC, "feed.nl-customs", D, True),
    ("nl-customs", TOPIC, "feed.nl-customs", W, False),
    ("nl-customs", TOPIC, "feed.europol", R, False),
    ("nl-customs", TOPIC, "feed.europol", D, False),
    ("nl-customs", TOPIC, "feed.europol", W, False),
    ("terminal-operator-x", TOPIC, "feed.terminal-operator-x", R, False),
    ("nl-customs", GROUP, "nl-customs.tail", R, True),
    ("nl-customs", GROUP, "nl-customs", R, False),
    ("nl-customs", GROUP, "europol.tail", R, False),
    ("nl-customs", GROUP, "bus-router", R, False),
    ("nl-customs", TXN, "bus-router-1", W, False),
    ("nl-customs", TOPIC, "audit", R, False),
    ("nl-customs", TOPIC, "feed.new", C, False),
    ("nl-customs", CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE, False),
    ("svc-router", TOPIC, "alerts.suspicious-container", R, True),
    ("svc-router", TOPIC, "alerts.suspicious-container", W, False),
    ("svc-router", TOPIC, "feed.europol", W, True),
    ("svc-router", TOPIC, "feed.europol", R, False),
    ("svc-router", TOPIC, "feed.someone-new", C, True),
    ("svc-router", TOPIC, "audit", W, True),
    ("svc-router", TOPIC, "audit", R, True),
    ("svc-router", TOPIC, "acks", R, True),
    ("svc-router", TOPIC, "acks", W, False),
    ("svc-router", TOPIC, "receipts.nl-customs", W, True),
    ("svc-router", TOPIC, "receipts.someone-new", W, True),
    ("svc-router", TOPIC, "receipts.nl-customs", R, False),
    ("svc-router", TOPIC, "audit.checkpoints", W, True),
    ("svc-router", TOPIC, "router.changelog", W, True),
    ("svc-router", TOPIC, "router.changelog", R, True),
    ("svc-router", TOPIC, "dlq.rejected", W, True),
    ("svc-router", TOPIC, "dlq.rejected", R, False),
    ("svc-router", GROUP, "bus-router", R, True),
    ("svc-router", TXN, "bus-router-1", W, True),
    ("svc-router", TXN, "bus-router-2", D, True),
    ("svc-auditor", TOPIC, "audit", R, True),
    ("svc-auditor", TOPIC, "audit", W, False),
    ("svc-auditor", TOPIC, "audit.checkpoints", R, True),
    ("svc-auditor", TOPIC, "audit.checkpoints", W, False),
    ("svc-auditor", TOPIC, "receipts.nl-customs", R, False),
    ("svc-auditor", TOPIC, "feed.europol", R, False),
    ("svc-auditor", GROUP, "svc-auditor.check", R, True),
]


@pytest.mark.parametrize(("user", "rtype", "name", "op", "allowed"), DESIGN,
                         ids=[f"{u}-{o}-{n}" for u, _, n, o, _ in DESIGN])
def test_design(desired, user, rtype, name, op, allowed):
    assert can(desired, user, rtype, name, op) is allowed


def test_nobody_but_the_router_writes_a_feed(desired):
    writers = {a.principal for a in desired.acls
               if a.operation in (W, Operation.ALL) and a.resource_type is TOPIC
               and (a.name.startswith("feed.") or a.name == "feed.")}
    assert writers == {"User:svc-router"}


def test_only_the_auditor_and_the_router_read_audit(desired):
    users = [u.name for u in desired.users]
    assert [u for u in users if can(desired, u, TOPIC, "audit", R)] == ["svc-router", "svc-auditor"]


def test_each_feed_is_readable_by_exactly_its_member(desired):
    users = [u.name for u in desired.users]
    for member, feed in FEEDS.items():
        assert [u for u in users if can(desired, u, TOPIC, feed, R)] == [member.lower()]


def test_each_receipts_topic_is_readable_by_exactly_its_member_and_written_only_by_the_router(desired):
    users = [u.name for u in desired.users]
    for member in MEMBERS:
        topic = f"receipts.{member.id.lower()}"
        assert [u for u in users if can(desired, u, TOPIC, topic, R)] == [member.id.lower()]
        assert [u for u in users if can(desired, u, TOPIC, topic, W)] == ["svc-router"]


def test_every_member_reads_the_public_audit_checkpoints_and_only_the_router_writes_them(desired):
    users = [u.name for u in desired.users]
    assert [u for u in users if not can(desired, u, TOPIC, "audit.checkpoints", R)] == ["svc-router"]
    assert [u for u in users if can(desired, u, TOPIC, "audit.checkpoints", W)] == ["svc-router"]


def test_group_prefixes_do_not_overlap():
    state = ap.desired_state([M("NL"), M("NL-CUSTOMS")], {"NL": "feed.nl", "NL-CUSTOMS": "feed.nl-customs"}, [])
    assert can(state, "nl", GROUP, "nl.tail", R)
    assert not can(state, "nl", GROUP, "nl-customs.tail", R)


def test_allows_mirrors_kafka_rules():
    grant = AclBinding("User:a", TOPIC, PatternType.LITERAL, "t", R)
    deny = AclBinding("User:a", TOPIC, PatternType.LITERAL, "t", R, Permission.DENY)
    anyone = AclBinding("User:*", TOPIC, PatternType.LITERAL, "*", D)
    assert ap.allows([grant], "a", TOPIC, "t", D)  # READ implies DESCRIBE
    assert not ap.allows([grant, deny], "a", TOPIC, "t", R)  # DENY wins
    assert ap.allows([grant, deny], "a", TOPIC, "t", D)  # a denied READ does not deny DESCRIBE
    assert ap.allows([anyone], "b", TOPIC, "x", D) and not ap.allows([anyone], "b", TOPIC, "x", R)
    assert not ap.allows([], "a", TOPIC, "t", D)  # no ACL found: denied


# -- diff ---------------------------------------------------------------------------------------


def test_empty_cluster_gets_everything(desired):
    plan = ap.diff(desired, CurrentState({}, frozenset({"admin"}), frozenset()))
    assert {c.subject for c in plan.of(ChangeKind.CREATE_TOPIC)} == {t.name for t in TOPICS}
    assert len(plan.of(ChangeKind.CREATE_USER)) == 6
    assert len(plan.of(ChangeKind.CREATE_ACL)) == len(desired.acls)
    assert not plan.of(ChangeKind.DELETE_ACL)
    assert plan.users_needing_password() == [u.name for u in desired.users]


def test_in_sync_means_no_changes(desired):
    assert ap.diff(desired, in_sync(desired)).empty


def test_rotation_is_explicit(desired):
    plan = ap.diff(desired, in_sync(desired), rotate_passwords=True)
    assert [c.kind for c in plan.changes] == [ChangeKind.ROTATE_PASSWORD] * 6


def test_config_drift_alters_only_differing_keys(desired):
    current = in_sync(desired)
    topics = dict(current.topics)
    topics["audit"] = TopicState(1, 1, {"retention.ms": "604800000", "min.insync.replicas": "1"})
    topics["router.changelog"] = TopicState(6, 1, {"cleanup.policy": "delete,compact"})  # same set
    plan = ap.diff(desired, replace(current, topics=topics))
    assert [(c.kind, c.subject, c.config) for c in plan.changes] == [
        (ChangeKind.ALTER_CONFIG, "audit", (("retention.ms", "-1"),))]


def test_partitions_grow_but_never_shrink(desired):
    current = in_sync(desired)
    topics = dict(current.topics)
    topics["dlq.rejected"] = TopicState(3, 1, {})
    topics["feed.europol"] = TopicState(12, 3, {})
    plan = ap.diff(desired, replace(current, topics=topics))
    assert [(c.kind, c.subject) for c in plan.changes] == [(ChangeKind.ADD_PARTITIONS, "dlq.rejected")]
    text = " ".join(plan.warnings)
    assert "feed.europol has 12 partitions" in text and "replication 3" in text
    assert plan.errors == ()


@pytest.mark.parametrize("topic", ["alerts.suspicious-container", "acks", "audit", "router.changelog"])
@pytest.mark.parametrize("partitions", [3, 12])
def test_partition_counts_of_co_partitioned_topics_are_never_changed(desired, topic, partitions):
    """Growing one would move keys to other partitions and split a router task; it is an error."""
    current = in_sync(desired)
    plan = ap.diff(desired, replace(current, topics={**current.topics, topic: TopicState(partitions, 1, {})}))
    assert not plan.of(ChangeKind.ADD_PARTITIONS)
    [error] = plan.errors
    assert error.startswith(f"{topic} has {partitions} partitions, the plan says 6") and "fixed" in error
    assert f"--partitions {partitions}" in error


def test_co_partitioning_follows_the_topic_names():
    names = ap.BusNames()
    assert [t for t in ("alerts.x", "acks", "audit", "router.changelog", "audit.checkpoints", "feed.x",
                        "receipts.x", "dlq.rejected") if names.co_partitioned(t)] == \
        ["alerts.x", "acks", "audit", "router.changelog"]


def test_stale_grants_are_revoked_others_left_alone(desired):
    managed_extra = AclBinding("User:nl-customs", TOPIC, PatternType.LITERAL, "feed.europol", R)
    stranger_on_feed = AclBinding("User:mallory", TOPIC, PatternType.PREFIXED, "feed.", R)
    stranger_elsewhere = AclBinding("User:mallory", TOPIC, PatternType.LITERAL, "other.team", R)
    stranger_group = AclBinding("User:mallory", GROUP, PatternType.PREFIXED, "mallory.", R)
    deny = AclBinding("User:nl-customs", TOPIC, PatternType.LITERAL, "feed.nl-customs", R,
                      Permission.DENY)
    admin = AclBinding("User:admin", TOPIC, PatternType.LITERAL, "audit", W)
    current = in_sync(desired)
    current = replace(current, users=current.users | {"mallory"}, acls=current.acls | {
        managed_extra, stranger_on_feed, stranger_elsewhere, stranger_group, deny, admin})
    plan = ap.diff(desired, current)
    assert {c.acl for c in plan.of(ChangeKind.DELETE_ACL)} == {managed_extra, stranger_on_feed}
    assert len(plan.changes) == 2
    assert any("mallory lost its grants" in w for w in plan.warnings)


def test_a_removed_member_loses_its_grants(desired):
    current = in_sync(desired)
    smaller = ap.desired_state([m for m in MEMBERS if m.id != "EUROPOL"],
                               {k: v for k, v in FEEDS.items() if k != "EUROPOL"}, TOPICS)
    plan = ap.diff(smaller, current)
    deleted = {c.acl for c in plan.of(ChangeKind.DELETE_ACL)}
    assert {a.name for a in deleted} == {"alerts.operation-notice", "acks", "feed.europol",
                                         "receipts.europol", "audit.checkpoints"}
    assert all(a.principal == "User:europol" for a in deleted)
    # its group-prefix grant is not on a bus topic: it stays, harmless without topic access
    assert any("europol lost its grants" in w for w in plan.warnings)


def test_wide_topic_grants_are_flagged(desired):
    wide = AclBinding("User:monitor", TOPIC, PatternType.LITERAL, "*", R)
    plan = ap.diff(desired, replace(in_sync(desired), acls=desired.acls | {wide}))
    assert plan.empty
    assert any("User:monitor is granted READ on every topic" in w for w in plan.warnings)


def test_the_plan_names_the_topology_topics():
    from bus.core import topology
    from bus.core.policy import FEED_PREFIX
    from bus.services.provision import bus_names

    assert bus_names() == ap.BusNames()
    names = ap.BusNames()
    assert names.feed_prefix == FEED_PREFIX == topology.FEED_TOPIC_PREFIX
    assert names.receipts_topic("nl-customs") == topology.receipts_topic("NL-CUSTOMS")
    assert (names.alert_prefix, names.acks, names.audit, names.audit_checkpoints, names.changelog) == (
        topology.ALERT_TOPIC_PREFIX, topology.ACKS_TOPIC, topology.AUDIT_TOPIC,
        topology.AUDIT_CHECKPOINTS_TOPIC, topology.CHANGELOG_TOPIC)


def test_plan_for_real_topics_and_policy_files():
    """The repository's own federation and default policy produce a consistent plan."""
    from pathlib import Path

    from bus.adapters.federation_file import load_verified_directory
    from bus.adapters.policy_file import load_policy
    from bus.services.provision import plan_for

    repo = Path(__file__).resolve().parents[2]
    directory = load_verified_directory(repo / "federation/federation.yaml",
                                        repo / "federation/authority.pub")
    policy = load_policy(repo / "policies/default.yaml")
    state = plan_for(directory, policy)
    assert len(state.users) == len(directory.members) + 2
    by_name = {t.name: t for t in state.topics}
    audit, checkpoints = by_name["audit"], by_name["audit.checkpoints"]
    assert audit.partitions == 6 and ("retention.ms", "-1") in audit.config
    assert checkpoints.partitions == 1 and ("retention.ms", "-1") in checkpoints.config
    assert {t for t in by_name if t.startswith("receipts.")} == {f"receipts.{m.id.lower()}" for m in directory.members}
    assert {t for t in by_name if t.startswith("feed.")} == set(policy.feeds().values())
    co_partitioned = [t for t in state.topics if state.names.co_partitioned(t.name)]
    assert len(co_partitioned) == 3 + 3  # three alert types, acks, audit, router.changelog
    assert {t.partitions for t in co_partitioned} == {6}
    assert ap.diff(state, in_sync(state)).empty
