"""Provisioning: make the cluster's topics, SCRAM users and ACLs match the plan.

The plan comes from `bus.core.acl_plan` (pure); this module reads what the cluster has,
applies only the differences, and checks afterwards that nothing is left to do, so a
second run reports "no changes". Passwords come from `SecretsFile` and go to the broker
only as salted SCRAM credentials; they are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError, SecurityDisabledError

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters.secrets_file import SecretsFile, env_name
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.policy import FEED_PREFIX, Policy
from bus.core.trust import FederationDirectory
from bus.errors import ProvisionError

log = structlog.get_logger("bus.provision")

SCRAM = ScramMechanism.SCRAM_SHA_512
SCRAM_ITERATIONS = 8192




def bus_names(router_group: str = ap.ROUTER_GROUP,
              router_transactional_prefix: str = ap.ROUTER_TRANSACTIONAL_PREFIX) -> ap.BusNames:
    """The real topic names, and the router's group and transactional-id prefix."""
    return ap.BusNames(
        alert_prefix="alerts.", feed_prefix=FEED_PREFIX, audit=kafka_adapter.AUDIT_TOPIC,
        dlq=kafka_adapter.DLQ_TOPIC, replay=kafka_adapter.REPLAY_TOPIC,
        router_group=router_group, router_transactional_prefix=router_transactional_prefix,
    )


def plan_for(directory: FederationDirectory, policy: Policy, *, partitions: int = 6,
             replication: int = 1, names: ap.BusNames | None = None) -> ap.DesiredState:
    """Desired topics, users and grants for this directory and policy."""
    feeds = policy.feeds()
    topics = kafka_adapter.default_topics(partitions, replication) + [
        kafka_adapter.feed_topic_spec(t, partitions, replication)
        for t in sorted(set(feeds.values()))
    ]
    return ap.desired_state(directory.members, feeds, topics, names or bus_names())


# -- kafka-python <-> plan ---------------------------------------------------------------------

_ANY_ACL = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                     ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))


def to_kafka_acl(b: ap.AclBinding) -> ACL:
    return ACL(b.principal, b.host, ACLOperation[b.operation.value],
               ACLPermissionType[b.permission.value],
               ResourcePattern(ResourceType[b.resource_type.value], b.name,
                               ACLResourcePatternType[b.pattern.value]))


def from_kafka_acl(acl: ACL) -> ap.AclBinding | None:
    """None for bindings the plan has no words for (they are left alone)."""
    try:
        return ap.AclBinding(
            principal=acl.principal,
            resource_type=ap.ResourceType(acl.resource_pattern.resource_type.name),
            pattern=ap.PatternType(acl.resource_pattern.pattern_type.name),
            name=acl.resource_pattern.resource_name,
            operation=ap.Operation(acl.operation.name),
            permission=ap.Permission(acl.permission_type.name),
            host=acl.host,
        )
    except ValueError:
        return None


def read_current(client: KafkaAdminClient, desired: ap.DesiredState) -> ap.CurrentState:
    """Topics the plan names, users with SCRAM-SHA-512 credentials, and every ACL."""
    existing = set(client.list_topics())
    names = [t.name for t in desired.topics if t.name in existing]
    topics: dict[str, ap.TopicState] = {}
    if names:
        keys = {t.name: [k for k, _ in t.config] for t in desired.topics}
        configs = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, keys[n] or None) for n in names],
            config_filter="all",
        ).get("topic", {})
        for info in client.describe_topics(names):
            parts = info.get("partitions") or []
            replication = max((len(p.get("replica_nodes") or []) for p in parts), default=0)
            values = {k: v.get("value") for k, v in configs.get(info["name"], {}).items()}
            topics[info["name"]] = ap.TopicState(len(parts), replication, values)
    users = frozenset(
        user for user, info in client.describe_user_scram_credentials().items()
        if not info.get("error")
        and any(c["mechanism"] == SCRAM for c in info.get("credential_infos", []))
    )
    try:
        acls, _ = client.describe_acls(_ANY_ACL)
    except SecurityDisabledError as exc:
        raise ProvisionError(
            "the cluster has no authorizer, so ACLs cannot isolate partners; start the broker "
            "with `bus broker start --secure` (or configure an authorizer)") from exc
    bindings = frozenset(b for b in map(from_kafka_acl, acls) if b is not None)
    return ap.CurrentState(topics, users, bindings)


# -- applying ------------------------------------------------------------------------------------


def _apply_topics(client: KafkaAdminClient, plan: ap.Plan) -> None:
    create = {c.topic.name: c.topic for c in plan.of(ap.ChangeKind.CREATE_TOPIC) if c.topic}
    if create:
        client.create_topics({
            t.name: {"num_partitions": t.partitions, "replication_factor": t.replication,
                     "configs": t.config_map}
            for t in create.values()
        })
        client.wait_for_topics(list(create), timeout_ms=30000)
    grow = {c.subject: c.topic.partitions for c in plan.of(ap.ChangeKind.ADD_PARTITIONS) if c.topic}
    if grow:
        client.create_partitions(grow)
    alter = plan.of(ap.ChangeKind.ALTER_CONFIG)
    if alter:
        result = client.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, c.subject, dict(c.config)) for c in alter],
            incremental=True,
        )
        failed = {n: r for n, r in result.get("topic", {}).items() if r != "OK"}
        if failed:
            raise ProvisionError(f"altering topic configs failed: {failed}")


def _apply_users(client: KafkaAdminClient, plan: ap.Plan, secrets: SecretsFile) -> None:
    upserts = []
    for user in plan.users_needing_password():
        password = secrets.password(user)
        if password is None:  # checked before applying; kept as a guard
            raise ProvisionError(f"no password for {user}")
        upserts.append(UserScramCredentialUpsertion(
            user, SCRAM, password.get_secret_value(), iterations=SCRAM_ITERATIONS))
    if not upserts:
        return
    result = client.alter_user_scram_credentials(upserts)
    failed = {u: msg for u, msg in result.items() if msg}
    if failed:
        raise ProvisionError(f"setting SCRAM credentials failed: {failed}")


def _apply_acls(client: KafkaAdminClient, plan: ap.Plan) -> None:
    create = [to_kafka_acl(c.acl) for c in plan.of(ap.ChangeKind.CREATE_ACL) if c.acl]
    if create:
        result = client.create_acls(create)
        if result["failed"]:
            raise ProvisionError(f"creating {len(result['failed'])} ACL(s) failed: "
                                 f"{sorted({str(e) for e in result['failed']})}")
    # Created before deleting, so a re-shaped grant never has a window without access.
    delete = [to_kafka_acl(c.acl) for c in plan.of(ap.ChangeKind.DELETE_ACL) if c.acl]
    if delete:
        for _filter, _matched, error in client.delete_acls(delete):
            if error is not None and getattr(error, "errno", 0):
                raise ProvisionError(f"deleting ACL {_filter} failed: {error}")


# -- the service ------------------------------------------------------------------------------


@dataclass
class ProvisionReport:
    plan: ap.Plan
    desired: ap.DesiredState
    applied: bool
    generated: list[str] = field(default_factory=list)
    """Users without a password: generated when applied (names only, never values)."""
    password_sources: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.applied and not self.plan.empty


def _settle(client: KafkaAdminClient, desired: ap.DesiredState, protected: Sequence[str],
            timeout: float) -> ap.Plan:
    """Metadata (ACLs, credentials) propagates asynchronously: wait until the diff is empty."""
    deadline = time.monotonic() + timeout
    while True:
        rest = ap.diff(desired, read_current(client, desired), protected_principals=protected)
        if rest.empty or time.monotonic() > deadline:
            return rest
        time.sleep(0.2)


def provision(
    settings: KafkaSettings,
    directory: FederationDirectory,
    policy: Policy,
    secrets: SecretsFile,
    *,
    partitions: int = 6,
    replication: int = 1,
    dry_run: bool = False,
    rotate_passwords: bool = False,
    generate_missing: bool = False,
    protected_principals: Sequence[str] | None = None,
    settle_timeout: float = 15.0,
    names: ap.BusNames | None = None,
) -> ProvisionReport:
    """Plan, and unless `dry_run` apply, then verify nothing is left to do."""
    desired = plan_for(directory, policy, partitions=partitions, replication=replication, names=names)
    protected = list(protected_principals or ("User:admin", "User:ANONYMOUS"))
    if settings.sasl_username:
        protected.append(ap.principal(settings.sasl_username))
    client = kafka_adapter.admin(settings)
    try:
        plan = ap.diff(desired, read_current(client, desired),
                       rotate_passwords=rotate_passwords, protected_principals=protected)
        need = plan.users_needing_password()
        missing = secrets.missing(need)
        report = ProvisionReport(plan, desired, applied=False, generated=list(missing),
                                 password_sources={u: secrets.source(u) for u in need})
        if dry_run or plan.empty:
            return report
        if missing and not generate_missing:
            hints = ", ".join(f"{u} (${env_name(u)})" for u in missing)
            raise ProvisionError(
                f"no password for {hints}: add them to the secrets file, set the environment "
                "variables, or pass --generate-missing"
            )
        secrets.generate(missing)
        report.password_sources = {u: secrets.source(u) for u in need}
        _apply_topics(client, plan)
        _apply_users(client, plan, secrets)
        _apply_acls(client, plan)
        report.applied = True
        log.info("provisioned", changes=len(plan.changes), bootstrap=settings.describe())
        rest = _settle(client, desired, protected, settle_timeout)
        if not rest.empty:
            left = "; ".join(f"{c.kind} {c.subject} {c.detail}" for c in rest.changes)
            raise ProvisionError(f"the cluster did not reach the planned state; left: {left}")
        return report
    except KafkaError as exc:
        raise ProvisionError(f"provisioning {settings.describe()} failed: {exc}") from exc
    finally:
        client.close()


__all__ = ["ProvisionError", "ProvisionReport", "bus_names", "plan_for", "provision",
           "read_current", "to_kafka_acl"]
