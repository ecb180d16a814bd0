"""The admin client on the in-memory cluster: topics, configs, ACLs, SCRAM users.

ACLs and SCRAM credentials are stored; they are enforced only for clients of an
engine made with `MemoryEngine.as_user` (the plain engine is a super user), with
the same rules as the broker's authorizer (`bus.core.acl_plan.allows`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from bus.adapters.kafka._memory.cluster import (
    CLUSTER_RESOURCE,
    DEFAULT_TOPIC_CONFIG,
    Cluster,
    Principal,
)
from bus.adapters.kafka._memory.log import PartitionLog
from bus.adapters.kafka.records import ClusterInfo, TopicInfo
from bus.core.acl_plan import AclBinding, Operation, ResourceType
from bus.core.topology import TopicSpec
from bus.errors import KafkaOperationFailed, KafkaUnavailable, NotAuthorized, ProtocolMismatch


class MemoryAdmin:
    def __init__(self, cluster: Cluster, principal: Principal | None) -> None:
        self._cluster = cluster
        self._principal = principal

    def _ready(self, timeout: float) -> Cluster:
        """The cluster, once it answers (call holding its lock)."""
        if not self._cluster.wait_available(timeout):
            raise KafkaUnavailable(f"no broker answered within {timeout:g} s")
        self._cluster.authenticate(self._principal)
        return self._cluster

    def _may(self, rtype: ResourceType, name: str, op: Operation) -> bool:
        return self._cluster.permits(self._principal, rtype, name, op)

    def _require(self, rtype: ResourceType, name: str, op: Operation) -> None:
        self._cluster.authorize(self._principal, rtype, name, op)

    # -- cluster and topics ----------------------------------------------------------------

    def describe_cluster(self, timeout: float = 10.0) -> ClusterInfo:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            return ClusterInfo("memory-cluster", cluster.brokers, 1)

    def list_topics(self, timeout: float = 10.0) -> set[str]:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            return {t for t in cluster.topics if self._may(ResourceType.TOPIC, t, Operation.DESCRIBE)}

    def describe_topics(self, names: Collection[str], timeout: float = 10.0) -> dict[str, TopicInfo]:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            return {n: TopicInfo(n, t.partitions, t.replication) for n in names
                    if (t := cluster.topics.get(n)) is not None and self._may(ResourceType.TOPIC, n,
                                                                              Operation.DESCRIBE)}

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float = 30.0) -> list[str]:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            for spec in specs:
                if not (self._may(ResourceType.CLUSTER, CLUSTER_RESOURCE, Operation.CREATE)
                        or self._may(ResourceType.TOPIC, spec.name, Operation.CREATE)):
                    raise NotAuthorized(f"not authorised to create topic {spec.name}", resource=f"topic {spec.name}")
            return [spec.name for spec in specs if cluster.create_topic(spec)]

    def create_partitions(self, counts: Mapping[str, int], timeout: float = 30.0) -> None:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            for name, count in counts.items():
                self._require(ResourceType.TOPIC, name, Operation.ALTER)
                topic = cluster.topic(name)
                if count <= topic.partitions:
                    raise KafkaOperationFailed(f"topic {name} has {topic.partitions} partitions: "
                                               f"it can only grow, not become {count}")
            for name, count in counts.items():
                topic = cluster.topics[name]
                topic.logs.extend(PartitionLog() for _ in range(count - topic.partitions))
            cluster.topics_changed(counts)

    def describe_configs(self, topics: Collection[str], timeout: float = 10.0) -> dict[str, dict[str, str]]:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            result: dict[str, dict[str, str]] = {}
            for name in topics:
                self._require(ResourceType.TOPIC, name, Operation.DESCRIBE_CONFIGS)
                result[name] = {**DEFAULT_TOPIC_CONFIG, **cluster.topic(name).config}
            return result

    def alter_configs(self, changes: Mapping[str, Mapping[str, str]], timeout: float = 30.0) -> None:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            for name in changes:
                self._require(ResourceType.TOPIC, name, Operation.ALTER_CONFIGS)
                cluster.topic(name)
            for name, config in changes.items():
                cluster.topics[name].config.update(config)

    # -- ACLs and users --------------------------------------------------------------------

    def _acl_ready(self, timeout: float, op: Operation) -> Cluster:
        cluster = self._ready(timeout)
        if not cluster.authorizer:
            raise ProtocolMismatch("this cluster has no authorizer: ACLs cannot be listed or changed")
        self._require(ResourceType.CLUSTER, CLUSTER_RESOURCE, op)
        return cluster

    def describe_acls(self, timeout: float = 10.0) -> list[AclBinding]:
        with self._cluster.cond:
            return sorted(self._acl_ready(timeout, Operation.DESCRIBE).acls)

    def create_acls(self, bindings: Sequence[AclBinding], timeout: float = 30.0) -> None:
        with self._cluster.cond:
            self._acl_ready(timeout, Operation.ALTER).acls.update(bindings)

    def delete_acls(self, bindings: Sequence[AclBinding], timeout: float = 30.0) -> None:
        with self._cluster.cond:
            self._acl_ready(timeout, Operation.ALTER).acls.difference_update(bindings)

    def scram_users(self, timeout: float = 10.0) -> set[str]:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            self._require(ResourceType.CLUSTER, CLUSTER_RESOURCE, Operation.DESCRIBE)
            return set(cluster.scram)

    def upsert_scram_user(self, user: str, password: str, iterations: int = 8192, timeout: float = 30.0) -> None:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            self._require(ResourceType.CLUSTER, CLUSTER_RESOURCE, Operation.ALTER)
            if iterations < 4096:
                raise KafkaOperationFailed(f"SCRAM-SHA-512 needs at least 4096 iterations, not {iterations}")
            if not user or not password:
                raise KafkaOperationFailed("a SCRAM user needs a non-empty name and password")
            cluster.scram[user] = password

    def delete_scram_user(self, user: str, timeout: float = 30.0) -> None:
        with self._cluster.cond:
            cluster = self._ready(timeout)
            self._require(ResourceType.CLUSTER, CLUSTER_RESOURCE, Operation.ALTER)
            if cluster.scram.pop(user, None) is None:
                raise KafkaOperationFailed(f"user {user!r} has no SCRAM credential to delete")

    def close(self) -> None:
        """Nothing to release."""
