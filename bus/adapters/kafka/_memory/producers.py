"""Producers on the in-memory cluster: idempotent, and transactional with fencing.

A record is stored when `send` returns if the cluster is available (its future is
already answered); otherwise it waits, in order, until the cluster comes back, as
an idempotent producer retries. Keyed records go where murmur2 puts them, null-key
records round robin.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from bus.adapters.kafka._memory.cluster import (
    MAX_TRANSACTION_TIMEOUT_MS,
    Cluster,
    CommitFault,
    MemoryDeliveryFuture,
    PendingSend,
    Principal,
)
from bus.adapters.kafka._memory.groups import MemoryGroupMetadata
from bus.adapters.kafka._memory.log import Txn, TxnState
from bus.adapters.kafka.port import GroupMetadata
from bus.adapters.kafka.records import Headers, Record, TopicPartition
from bus.core.acl_plan import Operation, ResourceType
from bus.core.placement import partition_for
from bus.errors import (
    Fenced,
    KafkaOperationFailed,
    KafkaUnavailable,
    OutcomeUnknown,
    RecordTooLarge,
)


class _Sender:
    """What both producers share: placement, size limit, handing records to the cluster."""

    def __init__(self, cluster: Cluster, principal: Principal | None) -> None:
        self._cluster = cluster
        self._principal = principal
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaOperationFailed("the producer is closed")

    def _queue(self, topic: str, value: bytes | None, key: bytes | None, headers: Headers,
               partition: int | None, txn: Txn | None) -> MemoryDeliveryFuture:
        """Place and size-check a record, then hand it to the cluster (call holding the lock)."""
        cluster = self._cluster
        cluster.authorize(self._principal, ResourceType.TOPIC, topic, Operation.WRITE)
        count = cluster.topic(topic).partitions
        if partition is None:
            if key is not None:
                partition = partition_for(key, count)
            else:
                partition = next(self._round_robin.setdefault(topic, itertools.count())) % count
        elif not 0 <= partition < count:
            raise KafkaOperationFailed(f"topic {topic} has no partition {partition} (it has {count})")
        record = Record(topic, partition, -1, cluster.now_ms(), key, value, tuple(headers))
        limits = cluster.capabilities
        refused = None if limits is None else limits.cannot_send(key, value, tuple(headers))
        if refused is not None and record.size <= cluster.max_record_bytes:
            raise KafkaOperationFailed(f"this engine cannot send {refused} (topic {topic})")
        if record.size > cluster.max_record_bytes:
            raise RecordTooLarge(f"a record of {record.size} bytes is over the producer's limit of "
                                 f"{cluster.max_record_bytes} bytes (topic {topic})")
        future = MemoryDeliveryFuture(cluster)
        cluster.submit(PendingSend(record, txn, future, owner=self))
        return future

    def _await_pending(self, timeout: float) -> bool:
        return self._cluster.wait_until(lambda: not self._cluster.has_pending(self), timeout)


class MemoryProducer(_Sender):
    """Idempotent, acks=all; thread-safe."""

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = (),
             partition: int | None = None) -> MemoryDeliveryFuture:
        with self._cluster.cond:
            self._check_open()
            return self._queue(topic, value, key, headers, partition, None)

    def flush(self, timeout: float) -> None:
        with self._cluster.cond:
            if not self._await_pending(timeout):
                raise OutcomeUnknown(f"records still unanswered after {timeout:g} s")

    def close(self, timeout: float = 10.0) -> None:
        with self._cluster.cond:
            if self._closed:
                return
            self._await_pending(timeout)
            self._closed = True
            for send in [p for p in self._cluster.pending if p.owner is self]:
                send.future.fail(OutcomeUnknown("the producer closed before the broker answered"))
            self._cluster.pending = [p for p in self._cluster.pending if p.owner is not self]
            self._cluster.cond.notify_all()


class MemoryTransactionalProducer(_Sender):
    """One transactional id. `init` fences older producers with the same id.

    After a commit whose outcome is unknown (injected, or the cluster was away), the
    producer is in the state a real client is in: only `commit` again (which then
    completes) or a new producer's `init` settle it; `abort` and `begin` are refused.
    """

    def __init__(self, cluster: Cluster, principal: Principal | None, transactional_id: str,
                 transaction_timeout_ms: int) -> None:
        super().__init__(cluster, principal)
        self.transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms
        self._epoch: int | None = None
        self._txn: Txn | None = None
        self._commit_pending = False

    # -- state checks ----------------------------------------------------------------------

    def _check(self) -> None:
        self._check_open()
        if self._epoch is None:
            raise KafkaOperationFailed("call init before using a transactional producer")
        if self._cluster.epochs.get(self.transactional_id) != self._epoch:
            raise Fenced(f"another producer initialised transactional id {self.transactional_id}")
        self._cluster.expire_transactions()

    def _open_txn(self) -> Txn:
        txn = self._txn
        if txn is None or self._commit_pending:
            raise KafkaOperationFailed("no transaction in progress: call begin first")
        if txn.state is TxnState.ABORTED:
            raise KafkaOperationFailed(f"transaction of {self.transactional_id} was aborted by the coordinator "
                                       f"(open longer than {self._timeout_ms} ms): abort and begin again")
        if txn.failure is not None:
            raise type(txn.failure)(f"the transaction must be aborted: {txn.failure}")
        return txn

    # -- the protocol ----------------------------------------------------------------------

    def init(self, timeout: float) -> None:
        cluster = self._cluster
        with cluster.cond:
            self._check_open()
            if self._epoch is not None:
                raise KafkaOperationFailed("init was already called on this producer")
            if self._timeout_ms > MAX_TRANSACTION_TIMEOUT_MS:
                raise KafkaOperationFailed(f"transaction timeout {self._timeout_ms} ms is over the broker's "
                                           f"maximum of {MAX_TRANSACTION_TIMEOUT_MS} ms")
            cluster.authorize(self._principal, ResourceType.TRANSACTIONAL_ID, self.transactional_id,
                              Operation.WRITE)
            if not cluster.wait_available(timeout):
                raise KafkaUnavailable(f"no broker answered within {timeout:g} s")
            self._epoch = cluster.init_transactional(self.transactional_id)

    def begin(self) -> None:
        with self._cluster.cond:
            self._check()
            if self._commit_pending:
                raise KafkaOperationFailed("the last commit's outcome is unknown: call commit again, "
                                           "or initialise a new producer")
            if self._txn is not None and self._txn.state is TxnState.OPEN:
                raise KafkaOperationFailed("a transaction is already in progress")
            self._txn = Txn(self.transactional_id, self._epoch or 0, self._cluster.now_ms(), self._timeout_ms)
            self._cluster.txns[self.transactional_id] = self._txn

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = (),
             partition: int | None = None) -> MemoryDeliveryFuture:
        with self._cluster.cond:
            self._check()
            return self._queue(topic, value, key, headers, partition, self._open_txn())

    def send_offsets(self, offsets: Mapping[TopicPartition, int], group: GroupMetadata, timeout: float) -> None:
        cluster = self._cluster
        with cluster.cond:
            self._check()
            txn = self._open_txn()
            if not isinstance(group, MemoryGroupMetadata):
                raise KafkaOperationFailed("group metadata must come from a consumer of the same engine")
            if not offsets:
                return  # nothing to send, as with the real clients
            cluster.authorize(self._principal, ResourceType.GROUP, group.group_id, Operation.READ)
            if not cluster.wait_available(timeout):
                raise KafkaUnavailable(f"no broker answered within {timeout:g} s")
            if any(offset < 0 for offset in offsets.values()):
                raise KafkaOperationFailed(f"offsets must not be negative: {dict(offsets)}")
            error = cluster.group(group.group_id).commit_error(group)
            if error is not None:
                if not isinstance(error, Fenced):
                    txn.failure = error
                raise error
            txn.offsets.setdefault(group.group_id, {}).update(offsets)

    def commit(self, timeout: float) -> None:
        cluster = self._cluster
        with cluster.cond:
            self._check()
            txn = self._txn
            if self._commit_pending:  # a retry after an unknown outcome
                assert txn is not None
                if txn.state is not TxnState.OPEN:
                    self._txn, self._commit_pending = None, False
                    if txn.state is TxnState.COMMITTED:
                        return  # it had been applied: this time the answer arrives
                    raise KafkaOperationFailed(f"transaction of {self.transactional_id} was aborted by the "
                                               "coordinator before its commit arrived")
            else:
                txn = self._open_txn()
            if not (cluster.wait_available(timeout) and self._await_pending(timeout)):
                self._commit_pending = True
                raise OutcomeUnknown(f"commit of {self.transactional_id} not answered within {timeout:g} s")
            if txn.failure is not None:
                self._commit_pending = False
                raise type(txn.failure)(f"the transaction must be aborted: {txn.failure}")
            fault = self._take_commit_fault()
            if fault is not None and not fault.applied:
                self._commit_pending = True
                raise OutcomeUnknown(f"commit of {self.transactional_id}: request lost (injected), not applied")
            cluster.end_transaction(txn, commit=True)
            if fault is not None:
                self._commit_pending = True
                raise OutcomeUnknown(f"commit of {self.transactional_id}: applied, answer lost (injected)")
            self._txn = None

    def _take_commit_fault(self) -> CommitFault | None:
        for fault in self._cluster.commit_faults:
            if fault.transactional_id in (None, self.transactional_id):
                self._cluster.commit_faults.remove(fault)
                return fault
        return None

    def abort(self, timeout: float) -> None:
        cluster = self._cluster
        with cluster.cond:
            self._check()
            if self._commit_pending:
                raise KafkaOperationFailed("a commit is in progress with an unknown outcome: call commit again, "
                                           "or initialise a new producer")
            txn = self._txn
            if txn is None:
                raise KafkaOperationFailed("no transaction in progress")
            if txn.state is TxnState.OPEN:
                if not cluster.wait_available(timeout):
                    raise OutcomeUnknown(f"abort of {self.transactional_id} not answered within {timeout:g} s")
                cluster.end_transaction(txn, commit=False)
            self._txn = None

    def close(self, timeout: float = 10.0) -> None:
        """Release the producer; an open transaction stays open until it times out or the id is re-initialised."""
        with self._cluster.cond:
            self._closed = True

