"""The shared state of one in-memory cluster: topics, transactions, groups, access, faults.

Every client an engine makes holds the same `Cluster`. One re-entrant lock guards
all of it, and one condition on that lock wakes whoever waits (a `poll`, a delivery,
a flush) whenever something changes: clients may be used from several threads.
Timestamps, session and transaction timeouts follow the cluster's clock (injectable);
how long a call blocks follows real time, as it does with a real client.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from bus.adapters.kafka._memory.groups import Group
from bus.adapters.kafka._memory.log import DataEntry, PartitionLog, Topic, Txn, TxnState
from bus.adapters.kafka.records import Capabilities, Delivery, Record, TopicPartition
from bus.core.acl_plan import AclBinding, Operation, ResourceType, allows
from bus.core.topology import TopicSpec
from bus.errors import (
    AuthenticationFailed,
    Fenced,
    KafkaError,
    KafkaOperationFailed,
    NotAuthorized,
    OutcomeUnknown,
    RecordTooLarge,
)

Clock = Callable[[], int]
"""Milliseconds since the epoch."""

DEFAULT_TOPIC_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "max.message.bytes": "1048588",
    "min.insync.replicas": "1",
    "message.timestamp.type": "CreateTime",
}
"""What `describe_configs` reports for a key a topic does not set (the broker defaults)."""

MAX_TRANSACTION_TIMEOUT_MS = 900_000
"""The broker's transaction.max.timeout.ms: a producer asking for more cannot initialise."""

CLUSTER_RESOURCE = "kafka-cluster"
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def system_clock() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Principal:
    """Who a client authenticates as (SCRAM user and password)."""

    user: str
    password: str


class MemoryDeliveryFuture:
    """Answered by the cluster, under its lock, when the record is stored or refused."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._delivery: Delivery | None = None
        self._error: KafkaError | None = None

    def resolve(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def fail(self, error: KafkaError) -> None:
        self._error = error

    def done(self) -> bool:
        return self._delivery is not None or self._error is not None

    def result(self, timeout: float) -> Delivery:
        with self._cluster.cond:
            if not self._cluster.wait_until(self.done, timeout):
                raise OutcomeUnknown(f"no answer from the broker within {timeout:g} s")
            if self._error is not None:
                raise self._error
            assert self._delivery is not None
            return self._delivery


@dataclass(eq=False)
class PendingSend:
    """A record handed to a producer and not yet answered (the cluster is unavailable)."""

    record: Record
    txn: Txn | None
    future: MemoryDeliveryFuture
    owner: object


@dataclass(eq=False)
class SendFault:
    topic: str
    error: type[KafkaError]
    when: Callable[[Record], bool] | None
    remaining: int | None

    def applies(self, record: Record) -> bool:
        return (self.topic == record.topic and self.remaining != 0
                and (self.when is None or self.when(record)))


@dataclass(eq=False)
class CommitFault:
    applied: bool
    transactional_id: str | None


@dataclass(eq=False)
class Cluster:
    brokers: int
    clock: Clock
    max_record_bytes: int
    max_wait: float | None
    authorizer: bool
    lock: threading.RLock = field(default_factory=threading.RLock)
    topics: dict[str, Topic] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    """Current producer epoch of each transactional id: older epochs are fenced."""
    txns: dict[str, Txn] = field(default_factory=dict)
    """The latest transaction of each transactional id."""
    available: bool = True
    pending: list[PendingSend] = field(default_factory=list)
    acls: set[AclBinding] = field(default_factory=set)
    scram: dict[str, str] = field(default_factory=dict)
    send_faults: list[SendFault] = field(default_factory=list)
    commit_faults: list[CommitFault] = field(default_factory=list)
    capabilities: Capabilities | None = None
    """What producers may send; None: anything (set by `MemoryEngine`)."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.cond = threading.Condition(self.lock)

    # -- time ------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock()

    def deadline(self, timeout: float) -> float:
        """When (time.monotonic) a wait of `timeout` seconds ends; `max_wait` caps every wait."""
        budget = max(0.0, timeout if self.max_wait is None else min(timeout, self.max_wait))
        return time.monotonic() + budget

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (holding the condition) until `condition()` or `timeout` real seconds; its last value."""
        deadline = self.deadline(timeout)
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.cond.wait(remaining)
        return True

    def wait_available(self, timeout: float) -> bool:
        return self.wait_until(lambda: self.available, timeout)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    # -- access ----------------------------------------------------------------------------

    def authenticate(self, principal: Principal | None) -> None:
        if principal is not None and self.scram.get(principal.user) != principal.password:
            raise AuthenticationFailed(f"SCRAM authentication failed for user {principal.user!r}")

    def permits(self, principal: Principal | None, rtype: ResourceType, name: str, op: Operation) -> bool:
        if principal is None or not self.authorizer:
            return True
        return allows(self.acls, principal.user, rtype, name, op)

    def authorize(self, principal: Principal | None, rtype: ResourceType, name: str, op: Operation) -> None:
        """Authenticate, then raise `NotAuthorized` unless the ACLs allow `op` (no principal: a super user)."""
        self.authenticate(principal)
        if not self.permits(principal, rtype, name, op):
            assert principal is not None
            raise NotAuthorized(f"user {principal.user} may not {op} {rtype.lower()} {name}",
                                resource=f"{rtype.lower()} {name}")

    # -- topics ----------------------------------------------------------------------------

    def topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise KafkaOperationFailed(f"topic {name!r} does not exist (this cluster does not create topics "
                                       "on first use)")
        return topic

    def log(self, tp: TopicPartition) -> PartitionLog | None:
        topic = self.topics.get(tp.topic)
        return topic.logs[tp.partition] if topic is not None and 0 <= tp.partition < topic.partitions else None

    def create_topic(self, spec: TopicSpec) -> bool:
        """Create `spec` unless a topic of that name exists; False if it did."""
        if spec.name in self.topics:
            return False
        if not _TOPIC_NAME.match(spec.name) or spec.name in (".", ".."):
            raise KafkaOperationFailed(f"invalid topic name {spec.name!r}: use 1 to 249 of a-z A-Z 0-9 . _ -")
        if spec.partitions < 1:
            raise KafkaOperationFailed(f"topic {spec.name}: partitions must be at least 1, not {spec.partitions}")
        if not 1 <= spec.replication <= self.brokers:
            raise KafkaOperationFailed(f"topic {spec.name}: replication factor {spec.replication} is not between "
                                       f"1 and the {self.brokers} available broker(s)")
        self.topics[spec.name] = Topic(spec.name, [PartitionLog() for _ in range(spec.partitions)],
                                       spec.replication, dict(spec.config))
        self.topics_changed([spec.name])
        return True

    def topics_changed(self, names: Iterable[str]) -> None:
        names = list(names)
        now = self.now_ms()
        for group in self.groups.values():
            group.topics_changed(names, now)
        self.cond.notify_all()

    def partition_counts(self) -> dict[str, int]:
        return {name: t.partitions for name, t in self.topics.items()}

    # -- producing -------------------------------------------------------------------------

    def submit(self, send: PendingSend) -> None:
        """Store the record now, or keep it until the cluster is available again."""
        if self.available:
            self.deliver(send)
        else:
            self.pending.append(send)

    def deliver(self, send: PendingSend) -> None:
        record, txn, future = send.record, send.txn, send.future
        self.cond.notify_all()
        if txn is not None and txn.state is not TxnState.OPEN:
            future.fail(Fenced(f"transactional id {txn.transactional_id} was fenced before the record was sent")
                        if self.epochs.get(txn.transactional_id) != txn.epoch
                        else KafkaOperationFailed("the transaction ended before the record was sent"))
            return
        error = self._refusal(record)
        if error is not None:
            future.fail(error)
            if txn is not None and txn.failure is None:
                txn.failure = error
            return
        log = self.topics[record.topic].logs[record.partition]
        offset = log.append(DataEntry(replace(record, offset=log.end), txn))
        if txn is not None:
            txn.first_offsets.setdefault(record.tp, offset)
        future.resolve(Delivery(record.topic, record.partition, offset))

    def _refusal(self, record: Record) -> KafkaError | None:
        """Why the broker refuses a record a producer sent (None: stored)."""
        error = self.broker_refusal(record)
        if error is not None:
            return error
        for fault in self.send_faults:
            if fault.applies(record):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault.error(f"injected failure for a record to {record.topic}")
        return None

    def broker_refusal(self, record: Record) -> KafkaError | None:
        """The topic's own limits: its max.message.bytes, and enough replicas for acks=all."""
        topic = self.topics[record.topic]
        config = {**DEFAULT_TOPIC_CONFIG, **topic.config}
        limit = int(config["max.message.bytes"])
        if record.size > limit:
            return RecordTooLarge(f"record of {record.size} bytes is over max.message.bytes={limit} "
                                  f"of topic {record.topic}")
        if int(config["min.insync.replicas"]) > topic.replication:
            return KafkaOperationFailed(f"not enough replicas: topic {record.topic} has replication "
                                        f"{topic.replication} and min.insync.replicas={config['min.insync.replicas']}")
        return None

    def drain(self) -> None:
        """The cluster is back: answer every record kept while it was away, in order."""
        pending, self.pending = self.pending, []
        for send in pending:
            self.deliver(send)

    def has_pending(self, owner: object) -> bool:
        return any(p.owner is owner for p in self.pending)

    # -- transactions ----------------------------------------------------------------------

    def init_transactional(self, transactional_id: str) -> int:
        """A new epoch for the id: fences older producers and aborts their open transaction."""
        self.expire_transactions()
        txn = self.txns.get(transactional_id)
        if txn is not None and txn.state is TxnState.OPEN:
            self.end_transaction(txn, commit=False)
        epoch = self.epochs.get(transactional_id, -1) + 1
        self.epochs[transactional_id] = epoch
        return epoch

    def end_transaction(self, txn: Txn, commit: bool) -> None:
        """Commit (offsets applied, markers written) or abort, atomically across partitions."""
        txn.state = TxnState.COMMITTED if commit else TxnState.ABORTED
        for tp in txn.first_offsets:
            self.topics[tp.topic].logs[tp.partition].end_transaction(txn, commit)
        if commit:
            for group_id, offsets in txn.offsets.items():
                self.group(group_id).committed.update(offsets)
        still_pending = [p for p in self.pending if p.txn is not txn]
        for send in self.pending:
            if send.txn is txn:
                self.deliver(send)  # refused: the transaction is over
        self.pending = still_pending
        self.cond.notify_all()

    def expire_transactions(self) -> None:
        """The coordinator aborts transactions left open past their timeout."""
        now = self.now_ms()
        for txn in self.txns.values():
            if txn.state is TxnState.OPEN and now - txn.started_ms > txn.timeout_ms:
                txn.expired = True
                self.end_transaction(txn, commit=False)

    def offsets_pending(self, group_id: str, tp: TopicPartition) -> bool:
        """An open transaction holds offsets for this partition: its committed offset is not stable yet."""
        return any(t.state is TxnState.OPEN and tp in t.offsets.get(group_id, {}) for t in self.txns.values())

    # -- groups ----------------------------------------------------------------------------

    def group(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        return group
