"""Provisioning: make the cluster's topics, SCRAM users and ACLs match the plan.

The plan comes from `bus.core.acl_plan` (pure); this module reads what the cluster has
through the Kafka port's `Admin`, applies only the differences, and checks afterwards
that nothing is left to do, so a second run reports "no changes". Passwords come from
`SecretsFile` and go to the broker only as salted SCRAM credentials; they are never logged.

Defaults (issue 9): replication follows the cluster (`topology.Replication.for_cluster`
over the brokers `describe_cluster` reports) unless given; a plan that would change the
partition count of a co-partitioned topic (`alerts.*`, `acks`, `audit`,
`router.changelog`) is refused as an error before anything is applied.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from bus.adapters.kafka import Admin
from bus.adapters.secrets_file import SecretsFile, env_name
from bus.core import acl_plan as ap
from bus.core import topology
from bus.core.models import AlertType
from bus.core.policy import FEED_PREFIX, Policy
from bus.core.trust import FederationDirectory
from bus.errors import ProtocolMismatch, ProvisionError

log = structlog.get_logger("bus.provision")

SCRAM_ITERATIONS = 8192


def bus_names(router_group: str = ap.ROUTER_GROUP,
              router_transactional_prefix: str = ap.ROUTER_TRANSACTIONAL_PREFIX) -> ap.BusNames:
    """The topic names of `bus.core.topology`, and the router's group and transactional-id prefix."""
    return ap.BusNames(feed_prefix=FEED_PREFIX, router_group=router_group,
                       router_transactional_prefix=router_transactional_prefix)


def replication_for(factor: int) -> topology.Replication:
    """An explicit replication factor, with the min.insync.replicas rule of `Replication`."""
    return topology.Replication(factor=factor, min_insync=2 if factor >= 3 else 1)


def plan_for(directory: FederationDirectory, policy: Policy, *,
             partitions: int = topology.ROUTING_PARTITIONS,
             replication: topology.Replication | int = 1,
             names: ap.BusNames | None = None) -> ap.DesiredState:
    """Desired topics, users and grants for this directory and policy.

    Topics: the core topics (`topology.core_topics`), one feed per partner of the policy,
    and one `receipts.<member>` per member of the directory.
    """
    if isinstance(replication, int):
        replication = replication_for(replication)
    names = names or bus_names()
    feeds = policy.feeds()
    topics = [
        *topology.core_topics([t.value for t in AlertType], replication, partitions),
        *(topology.feed_topic_spec(t, replication, partitions) for t in sorted(set(feeds.values()))),
        *(topology.receipts_topic_spec(names.receipts_topic(ap.user_name(m.id)), replication)
          for m in sorted(directory.members, key=lambda m: m.id)),
    ]
    return ap.desired_state(directory.members, feeds, topics, names)


def read_current(admin: Admin, desired: ap.DesiredState) -> ap.CurrentState:
    """Topics the plan names, users with SCRAM-SHA-512 credentials, and every ACL."""
    existing = admin.list_topics()
    names = [t.name for t in desired.topics if t.name in existing]
    topics: dict[str, ap.TopicState] = {}
    if names:
        configs = admin.describe_configs(names)
        for name, info in admin.describe_topics(names).items():
            topics[name] = ap.TopicState(info.partitions, info.replication, configs.get(name, {}))
    users = frozenset(admin.scram_users())
    try:
        bindings = frozenset(admin.describe_acls())
    except ProtocolMismatch as exc:
        raise ProvisionError(
            "the cluster has no authorizer, so ACLs cannot isolate partners; start the broker "
            "with `bus broker start --secure` (or configure an authorizer)") from exc
    return ap.CurrentState(topics, users, bindings)


# -- applying ------------------------------------------------------------------------------------


def _apply_topics(admin: Admin, plan: ap.Plan) -> None:
    create = [c.topic for c in plan.of(ap.ChangeKind.CREATE_TOPIC) if c.topic]
    if create:
        admin.create_topics([topology.TopicSpec(t.name, t.partitions, t.replication, t.config) for t in create])
    grow = {c.subject: c.topic.partitions for c in plan.of(ap.ChangeKind.ADD_PARTITIONS) if c.topic}
    if grow:
        admin.create_partitions(grow)
    alter = {c.subject: dict(c.config) for c in plan.of(ap.ChangeKind.ALTER_CONFIG)}
    if alter:
        admin.alter_configs(alter)


def _apply_users(admin: Admin, plan: ap.Plan, secrets: SecretsFile) -> None:
    for user in plan.users_needing_password():
        password = secrets.password(user)
        if password is None:  # checked before applying; kept as a guard
            raise ProvisionError(f"no password for {user}")
        admin.upsert_scram_user(user, password.get_secret_value(), iterations=SCRAM_ITERATIONS)


def _apply_acls(admin: Admin, plan: ap.Plan) -> None:
    create = [c.acl for c in plan.of(ap.ChangeKind.CREATE_ACL) if c.acl]
    if create:
        admin.create_acls(create)
    # Created before deleting, so a re-shaped grant never has a window without access.
    delete = [c.acl for c in plan.of(ap.ChangeKind.DELETE_ACL) if c.acl]
    if delete:
        admin.delete_acls(delete)


# -- the service ------------------------------------------------------------------------------


@dataclass
class ProvisionReport:
    plan: ap.Plan
    desired: ap.DesiredState
    applied: bool
    generated: list[str] = field(default_factory=list)
    """Users without a password: generated when applied (names only, never values)."""
    password_sources: dict[str, str] = field(default_factory=dict)
    replication: topology.Replication = field(default_factory=lambda: topology.Replication(1, 1))
    """The replication the plan used (the cluster's, unless given)."""

    @property
    def changed(self) -> bool:
        return self.applied and not self.plan.empty


def _settle(admin: Admin, desired: ap.DesiredState, protected: Sequence[str], timeout: float) -> ap.Plan:
    """Metadata (ACLs, credentials) propagates asynchronously: wait until the diff is empty."""
    deadline = time.monotonic() + timeout
    while True:
        rest = ap.diff(desired, read_current(admin, desired), protected_principals=protected)
        if rest.empty or time.monotonic() > deadline:
            return rest
        time.sleep(0.2)


def provision(
    admin: Admin,
    directory: FederationDirectory,
    policy: Policy,
    secrets: SecretsFile,
    *,
    partitions: int = topology.ROUTING_PARTITIONS,
    replication: int | None = None,
    dry_run: bool = False,
    rotate_passwords: bool = False,
    generate_missing: bool = True,
    protected_principals: Sequence[str] = ("User:admin", "User:ANONYMOUS"),
    settle_timeout: float = 15.0,
    names: ap.BusNames | None = None,
    target: str = "the cluster",
) -> ProvisionReport:
    """Plan, and unless `dry_run` apply, then verify nothing is left to do.

    New users get a generated password (into the secrets file, never printed) unless they have
    one or `generate_missing` is False; existing users keep theirs unless `rotate_passwords`.
    `protected_principals` are never revoked (add the provisioning user's own);
    `target` names the cluster in messages. A plan with errors (`Plan.errors`) is reported
    by a dry run and refused otherwise, before anything is applied.
    """
    factor = topology.Replication.for_cluster(admin.describe_cluster().brokers) if replication is None \
        else replication_for(replication)
    desired = plan_for(directory, policy, partitions=partitions, replication=factor, names=names)
    protected = list(protected_principals)
    plan = ap.diff(desired, read_current(admin, desired),
                   rotate_passwords=rotate_passwords, protected_principals=protected)
    need = plan.users_needing_password()
    missing = secrets.missing(need)
    report = ProvisionReport(plan, desired, applied=False, generated=list(missing),
                             password_sources={u: secrets.source(u) for u in need}, replication=factor)
    if dry_run:
        return report
    if plan.errors:
        raise ProvisionError("refusing to provision " + target + ": " + "; ".join(plan.errors))
    if plan.empty:
        return report
    if missing and (not generate_missing or secrets.path is None):
        hints = ", ".join(f"{u} (${env_name(u)})" for u in missing)
        if generate_missing:
            remedy = "give --secrets FILE to generate them into, or set the environment variables"
        else:  # the passwords come from a vault: generating one here would hide a gap in it
            remedy = "add them to the secrets file or set the environment variables (--no-generate-missing)"
        raise ProvisionError(f"no password for {hints}: {remedy}")
    secrets.generate(missing)
    report.password_sources = {u: secrets.source(u) for u in need}
    _apply_topics(admin, plan)
    _apply_users(admin, plan, secrets)
    _apply_acls(admin, plan)
    report.applied = True
    log.info("provisioned", changes=len(plan.changes), target=target)
    rest = _settle(admin, desired, protected, settle_timeout)
    if not rest.empty:
        left = "; ".join(f"{c.kind} {c.subject} {c.detail}" for c in rest.changes)
        raise ProvisionError(f"the cluster did not reach the planned state; left: {left}")
    return report


__all__ = ["ProvisionError", "ProvisionReport", "bus_names", "plan_for", "provision", "read_current",
           "replication_for"]
