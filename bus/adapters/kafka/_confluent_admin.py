"""The `confluent` engine's `Admin`: topics, configs, ACLs, SCRAM users, the cluster's shape.

librdkafka's admin calls return futures; `_Admin._wait` waits on them in short
slices so that an `error_cb` report (wrong password, TLS) ends the wait at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding as CAclBinding,
)
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from bus.adapters.kafka._common import Deadline
from bus.adapters.kafka._confluent_errors import Context, from_error, from_exception
from bus.adapters.kafka.confluent import _SLICE, _await_connection, _callbacks, _Watch, client_config
from bus.adapters.kafka.records import ClusterInfo, TopicInfo
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.topology import TopicSpec
from bus.errors import NotAuthorized, OutcomeUnknown, ProtocolMismatch

T = TypeVar("T")

# -- AclBinding <-> librdkafka ---------------------------------------------------------------

_RESOURCE = {ap.ResourceType.TOPIC: ResourceType.TOPIC, ap.ResourceType.GROUP: ResourceType.GROUP,
             ap.ResourceType.TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
             ap.ResourceType.CLUSTER: ResourceType.BROKER}
_RESOURCE_BACK = {v: k for k, v in _RESOURCE.items()}
_NO_NAME: Any = None
"""A filter's "any" for names, principals and hosts (typed `str` by the binding)."""
_ANY = AclBindingFilter(ResourceType.ANY, _NO_NAME, ResourcePatternType.ANY, _NO_NAME, _NO_NAME,
                        AclOperation.ANY, AclPermissionType.ANY)


def to_confluent_acl(b: ap.AclBinding) -> CAclBinding:
    return CAclBinding(_RESOURCE[b.resource_type], b.name, ResourcePatternType[b.pattern.value],
                       b.principal, b.host, AclOperation[b.operation.value],
                       AclPermissionType[b.permission.value])


def from_confluent_acl(acl: CAclBinding) -> ap.AclBinding | None:
    """None for bindings `AclBinding` has no words for (left alone by provisioning)."""
    try:
        return ap.AclBinding(
            principal=acl.principal, resource_type=_RESOURCE_BACK[ResourceType(acl.restype)],
            pattern=ap.PatternType(ResourcePatternType(acl.resource_pattern_type).name), name=acl.name,
            operation=ap.Operation(AclOperation(acl.operation).name),
            permission=ap.Permission(AclPermissionType(acl.permission_type).name), host=acl.host)
    except (KeyError, ValueError):
        return None


def _filter(acl: CAclBinding) -> AclBindingFilter:
    return AclBindingFilter(acl.restype, acl.name, acl.resource_pattern_type, acl.principal,
                            acl.host, acl.operation, acl.permission_type)


class ConfluentAdmin:
    def __init__(self, settings: KafkaSettings) -> None:
        self._watch = _Watch(settings)
        self._admin = AdminClient({**client_config(settings), **_callbacks(self._watch)})
        _await_connection(lambda t: self._admin.list_topics(timeout=t), self._admin.poll, self._watch)

    def _wait_raw(self, future: Future[T], timeout: float, action: str) -> T:
        """The future's result; librdkafka's `KafkaException` passes through for the caller to map."""
        deadline = Deadline(timeout)
        while True:
            try:
                return future.result(timeout=min(_SLICE, max(deadline.remaining(), 0.001)))
            except FutureTimeout:
                self._admin.poll(0)
                self._watch.raise_if_failed()
                if deadline.expired():
                    raise OutcomeUnknown(f"{action}: no answer within {timeout:g} s; "
                                         "it may or may not have taken effect") from None

    def _wait(self, future: Future[T], timeout: float, context: Context) -> T:
        try:
            return self._wait_raw(future, timeout, context.action)
        except KafkaException as exc:
            raise from_exception(exc, context) from None

    # cluster and topics ----------------------------------------------------------------------

    def describe_cluster(self, timeout: float = 10.0) -> ClusterInfo:
        result = self._wait(self._admin.describe_cluster(request_timeout=timeout), timeout,
                            Context("describing the cluster"))
        controller = result.controller.id if result.controller is not None else None
        return ClusterInfo(result.cluster_id, len(result.nodes), controller)

    def _metadata(self, timeout: float) -> Any:
        try:
            return self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            self._watch.raise_if_failed()
            raise from_exception(exc, Context("reading cluster metadata")) from None

    def list_topics(self, timeout: float = 10.0) -> set[str]:
        return {t for t in self._metadata(timeout).topics if not t.startswith("__")}

    def describe_topics(self, names: Collection[str], timeout: float = 10.0) -> dict[str, TopicInfo]:
        topics = self._metadata(timeout).topics
        out = {}
        for name in names:
            meta = topics.get(name)
            if meta is None or meta.error is not None:
                continue
            replication = max((len(p.replicas) for p in meta.partitions.values()), default=0)
            out[name] = TopicInfo(name, len(meta.partitions), replication)
        return out

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float = 30.0) -> list[str]:
        if not specs:
            return []
        deadline = Deadline(timeout)
        futures = self._admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication, config=s.config_map) for s in specs],
            operation_timeout=timeout, request_timeout=timeout)
        created = []
        for name, future in futures.items():
            context = Context(f"creating topic {name}", topic=name)
            try:
                self._wait_raw(future, deadline.remaining(), context.action)
                created.append(name)
            except KafkaException as exc:
                if _code(exc) == CKafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise from_exception(exc, context) from None
        self._await_leaders(created, deadline)
        return created

    def _await_leaders(self, names: Sequence[str], deadline: Deadline) -> None:
        """Created topics are usable once every partition has a leader."""
        while names:
            topics = self._metadata(max(0.5, deadline.remaining())).topics
            if all(n in topics and topics[n].error is None and topics[n].partitions
                   and all(p.leader >= 0 for p in topics[n].partitions.values()) for n in names):
                return
            if deadline.expired():
                raise OutcomeUnknown(f"topics {', '.join(names)} created but not ready in time")
            self._admin.poll(_SLICE)

    def create_partitions(self, counts: Mapping[str, int], timeout: float = 30.0) -> None:
        if not counts:
            return
        futures = self._admin.create_partitions(
            [NewPartitions(topic, count) for topic, count in counts.items()],
            operation_timeout=timeout, request_timeout=timeout)
        deadline = Deadline(timeout)
        for topic, future in futures.items():
            self._wait(future, deadline.remaining(), Context(f"adding partitions to {topic}", topic=topic))

    # configs -----------------------------------------------------------------------------------

    def describe_configs(self, topics: Collection[str], timeout: float = 10.0) -> dict[str, dict[str, str]]:
        if not topics:
            return {}
        futures = self._admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics],
                                               request_timeout=timeout)
        deadline = Deadline(timeout)
        out = {}
        for resource, future in futures.items():
            entries = self._wait(future, deadline.remaining(),
                                 Context(f"describing configs of {resource.name}", topic=resource.name))
            out[resource.name] = {k: e.value for k, e in entries.items() if e.value is not None}
        return out

    def alter_configs(self, changes: Mapping[str, Mapping[str, str]], timeout: float = 30.0) -> None:
        resources = [
            ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in cfg.items()])
            for topic, cfg in changes.items() if cfg
        ]
        if not resources:
            return
        futures = self._admin.incremental_alter_configs(resources, request_timeout=timeout)
        deadline = Deadline(timeout)
        for resource, future in futures.items():
            self._wait(future, deadline.remaining(),
                       Context(f"altering configs of {resource.name}", topic=resource.name))

    # ACLs ----------------------------------------------------------------------------------------

    def _acl_call(self, future: Future[T], timeout: float, action: str) -> T:
        try:
            return self._wait_raw(future, timeout, action)
        except KafkaException as exc:
            if _code(exc) == CKafkaError.SECURITY_DISABLED:
                raise ProtocolMismatch("the cluster has no authorizer, so ACLs cannot be used: start the "
                                       "broker with `bus broker start --secure` (or configure one)") from None
            raise from_exception(exc, Context(action)) from None

    def describe_acls(self, timeout: float = 10.0) -> list[ap.AclBinding]:
        found = self._acl_call(self._admin.describe_acls(_ANY, request_timeout=timeout), timeout,
                               "describing ACLs")
        if not found:
            self._check_may_describe_acls(timeout)
        return sorted(b for b in map(from_confluent_acl, found) if b is not None)

    def _check_may_describe_acls(self, timeout: float) -> None:
        """librdkafka answers [] to a principal the broker refused DescribeAcls: ask the cluster
        which operations this principal may perform on it, and say so when DESCRIBE is not one."""
        cluster = self._wait(self._admin.describe_cluster(include_authorized_operations=True,
                                                          request_timeout=timeout),
                             timeout, Context("describing the cluster"))
        allowed = set(cluster.authorized_operations or ())  # the binding turns "none" into None
        if not allowed & {AclOperation.DESCRIBE, AclOperation.ALTER, AclOperation.ALL}:
            raise NotAuthorized("not authorised: describing ACLs denied on cluster (no DESCRIBE on the "
                                "cluster resource)", "cluster")

    def create_acls(self, bindings: Sequence[ap.AclBinding], timeout: float = 30.0) -> None:
        if not bindings:
            return
        futures = self._admin.create_acls([to_confluent_acl(b) for b in bindings], request_timeout=timeout)
        deadline = Deadline(timeout)
        for acl, future in futures.items():
            self._acl_call(future, deadline.remaining(), f"creating ACL {acl}")

    def delete_acls(self, bindings: Sequence[ap.AclBinding], timeout: float = 30.0) -> None:
        if not bindings:
            return
        filters = [_filter(to_confluent_acl(b)) for b in bindings]
        futures = self._admin.delete_acls(filters, request_timeout=timeout)
        deadline = Deadline(timeout)
        for acl_filter, future in futures.items():
            self._acl_call(future, deadline.remaining(), f"deleting ACL {acl_filter}")

    # SCRAM users ---------------------------------------------------------------------------------

    def scram_users(self, timeout: float = 10.0) -> set[str]:
        request: Any = self._admin.describe_user_scram_credentials(request_timeout=timeout)  # one future
        found: Any = self._wait(request, timeout, Context("listing SCRAM users"))
        return {user for user, description in found.items()
                if any(i.mechanism == ScramMechanism.SCRAM_SHA_512
                       for i in description.scram_credential_infos)}

    def upsert_scram_user(self, user: str, password: str, iterations: int = 8192,
                          timeout: float = 30.0) -> None:
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, iterations), password.encode("utf-8"))
        self._alter_users([upsert], timeout, f"setting the SCRAM credential of {user}")

    def delete_scram_user(self, user: str, timeout: float = 30.0) -> None:
        self._alter_users([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)], timeout,
                          f"deleting the SCRAM credential of {user}")

    def _alter_users(self, alterations: list[Any], timeout: float, action: str) -> None:
        futures = self._admin.alter_user_scram_credentials(alterations, request_timeout=timeout)
        deadline = Deadline(timeout)
        for future in futures.values():
            self._wait(future, deadline.remaining(), Context(action))

    def close(self) -> None:
        """librdkafka releases the admin handle when it is garbage-collected."""
        self._admin.poll(0)


def _code(exc: KafkaException) -> int | None:
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, CKafkaError) else None


__all__ = ["ConfluentAdmin", "from_confluent_acl", "from_error", "to_confluent_acl"]
