"""The `kafka-python` engine's `Admin`: topics, configs, ACLs, SCRAM users, the cluster's shape."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import kafka.errors as E
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
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from bus.adapters.kafka._kafka_python_errors import Context, from_kafka_python
from bus.adapters.kafka.kafka_python import _build, client_config
from bus.adapters.kafka.records import ClusterInfo, TopicInfo
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.topology import TopicSpec
from bus.errors import KafkaOperationFailed, NotAuthorized, OutcomeUnknown, ProtocolMismatch

T = TypeVar("T")

_ANY_ACL = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                     ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))


def to_kafka_python_acl(b: ap.AclBinding) -> Any:
    return ACL(b.principal, b.host, ACLOperation[b.operation.value], ACLPermissionType[b.permission.value],
               ResourcePattern(ResourceType[b.resource_type.value], b.name,
                               ACLResourcePatternType[b.pattern.value]))


def from_kafka_python_acl(acl: Any) -> ap.AclBinding | None:
    """None for bindings `AclBinding` has no words for (left alone by provisioning)."""
    try:
        return ap.AclBinding(
            principal=acl.principal, resource_type=ap.ResourceType(acl.resource_pattern.resource_type.name),
            pattern=ap.PatternType(acl.resource_pattern.pattern_type.name),
            name=acl.resource_pattern.resource_name, operation=ap.Operation(acl.operation.name),
            permission=ap.Permission(acl.permission_type.name), host=acl.host)
    except ValueError:
        return None


class KafkaPythonAdmin:
    def __init__(self, settings: KafkaSettings) -> None:
        self._admin: Any = _build(settings, lambda: KafkaAdminClient(
            **client_config(settings), request_timeout_ms=15_000))

    def _call(self, context: Context, call: Callable[[], T]) -> T:
        try:
            return call()
        except E.SecurityDisabledError:
            raise ProtocolMismatch("the cluster has no authorizer, so ACLs cannot be used: start the "
                                   "broker with `bus broker start --secure` (or configure one)") from None
        except E.KafkaError as exc:
            raise from_kafka_python(exc, context) from None

    # cluster and topics ----------------------------------------------------------------------

    def describe_cluster(self, timeout: float = 10.0) -> ClusterInfo:
        found = self._call(Context("describing the cluster"), self._admin.describe_cluster)
        controller = found.get("controller_id")
        return ClusterInfo(found.get("cluster_id"), len(found.get("brokers") or []),
                           controller if controller is not None and controller >= 0 else None)

    def list_topics(self, timeout: float = 10.0) -> set[str]:
        found = self._call(Context("listing topics"), self._admin.list_topics)
        return {t for t in found if not t.startswith("__")}

    def describe_topics(self, names: Collection[str], timeout: float = 10.0) -> dict[str, TopicInfo]:
        existing = self.list_topics(timeout) & set(names)
        if not existing:
            return {}
        described = self._call(Context("describing topics"), lambda: self._admin.describe_topics(sorted(existing)))
        out = {}
        for info in described:
            parts = info.get("partitions") or []
            if info.get("error_code") or not parts:
                continue
            replication = max((len(p.get("replica_nodes") or []) for p in parts), default=0)
            out[info["name"]] = TopicInfo(info["name"], len(parts), replication)
        return out

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float = 30.0) -> list[str]:
        created = []
        for spec in specs:
            request = {spec.name: {"num_partitions": spec.partitions, "replication_factor": spec.replication,
                                   "configs": spec.config_map}}
            try:
                self._admin.create_topics(request, timeout_ms=int(timeout * 1000))
            except E.TopicAlreadyExistsError:
                continue
            except E.AuthorizationError:
                raise NotAuthorized(f"not authorised to create topic {spec.name}", f"topic {spec.name}") from None
            except E.KafkaError as exc:
                raise from_kafka_python(exc, Context(f"creating topic {spec.name}", topic=spec.name)) from None
            created.append(spec.name)
        if created:
            try:
                self._admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))
            except E.KafkaTimeoutError:
                raise OutcomeUnknown(f"topics {', '.join(created)} created but not ready in time") from None
        return created

    def create_partitions(self, counts: Mapping[str, int], timeout: float = 30.0) -> None:
        if counts:
            self._call(Context("adding partitions"), lambda: self._admin.create_partitions(
                dict(counts), timeout_ms=int(timeout * 1000)))

    # configs -----------------------------------------------------------------------------------

    def describe_configs(self, topics: Collection[str], timeout: float = 10.0) -> dict[str, dict[str, str]]:
        if not topics:
            return {}
        found = self._call(Context("describing configs"), lambda: self._admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics], config_filter="all"))
        return {name: {k: v["value"] for k, v in entries.items() if v.get("value") is not None}
                for name, entries in found.get("topic", {}).items()}

    def alter_configs(self, changes: Mapping[str, Mapping[str, str]], timeout: float = 30.0) -> None:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, dict(cfg)) for t, cfg in changes.items() if cfg]
        if not resources:
            return
        result = self._call(Context("altering configs"),
                            lambda: self._admin.alter_configs(resources, incremental=True))
        failed = {n: r for n, r in result.get("topic", {}).items() if r != "OK"}
        if failed:
            raise KafkaOperationFailed(f"altering topic configs failed: {failed}")

    # ACLs ----------------------------------------------------------------------------------------

    def describe_acls(self, timeout: float = 10.0) -> list[ap.AclBinding]:
        acls, _ = self._call(Context("describing ACLs"), lambda: self._admin.describe_acls(_ANY_ACL))
        return sorted(b for b in map(from_kafka_python_acl, acls) if b is not None)

    def create_acls(self, bindings: Sequence[ap.AclBinding], timeout: float = 30.0) -> None:
        if not bindings:
            return
        result = self._call(Context("creating ACLs"),
                            lambda: self._admin.create_acls([to_kafka_python_acl(b) for b in bindings]))
        if result["failed"]:
            raise KafkaOperationFailed(f"creating {len(result['failed'])} ACL(s) failed: "
                                       f"{sorted({str(e) for e in result['failed']})}")

    def delete_acls(self, bindings: Sequence[ap.AclBinding], timeout: float = 30.0) -> None:
        if not bindings:
            return
        results = self._call(Context("deleting ACLs"),
                             lambda: self._admin.delete_acls([to_kafka_python_acl(b) for b in bindings]))
        for acl_filter, _matched, error in results:
            if error is not None and getattr(error, "errno", None):
                raise KafkaOperationFailed(f"deleting ACL {acl_filter} failed: {error}")

    # SCRAM users ---------------------------------------------------------------------------------

    def scram_users(self, timeout: float = 10.0) -> set[str]:
        found = self._call(Context("listing SCRAM users"), self._admin.describe_user_scram_credentials)
        return {user for user, info in found.items()
                if not info.get("error")
                and any(c["mechanism"] == ScramMechanism.SCRAM_SHA_512 for c in info.get("credential_infos", []))}

    def upsert_scram_user(self, user: str, password: str, iterations: int = 8192, timeout: float = 30.0) -> None:
        self._alter_users([UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password,
                                                        iterations=iterations)],
                          f"setting the SCRAM credential of {user}")

    def delete_scram_user(self, user: str, timeout: float = 30.0) -> None:
        self._alter_users([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)],
                          f"deleting the SCRAM credential of {user}")

    def _alter_users(self, alterations: list[Any], action: str) -> None:
        result = self._call(Context(action), lambda: self._admin.alter_user_scram_credentials(alterations))
        failed = {u: msg for u, msg in result.items() if msg}
        if failed:
            raise KafkaOperationFailed(f"{action} failed: {failed}")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # close never raises (port contract)
            self._admin.close()
