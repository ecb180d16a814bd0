"""An in-process Kafka cluster behind the port, for unit tests of the services.

Like httpx's `MockTransport`: a service under test gets a `MemoryEngine` where it
would get a real engine, and the test looks at what the service did, or makes the
cluster misbehave, through the same engine:

    engine = MemoryEngine()
    engine.create_topic("alerts.suspicious-container", partitions=6)
    router = Router(engine, ...)
    engine.faults.next_commit_unknown(applied=True)   # the commit lands, its answer is lost
    router.process_once()
    assert [r.value for r in engine.records("feed.be-police")] == [...]

Every client made from one engine (or from `as_user` views of it) shares one
cluster, and all of it is thread-safe. It keeps the semantics services rely on:
topics must exist (no auto-creation), keyed records go where murmur2 puts them,
transactions are atomic with their offsets, read_committed readers stop at the last
stable offset, `init` fences older producers, groups rebalance with the eager range
protocol (static members included). What it leaves out: replication, retention and
compaction, quotas, and anything timed by the network. Integration tests, not this,
show that a real broker agrees.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from bus.adapters.kafka._memory.admin import MemoryAdmin
from bus.adapters.kafka._memory.cluster import Cluster, Principal, system_clock
from bus.adapters.kafka._memory.consumer import MemoryConsumer
from bus.adapters.kafka._memory.faults import Faults
from bus.adapters.kafka._memory.groups import MemoryGroupMetadata
from bus.adapters.kafka._memory.log import DataEntry
from bus.adapters.kafka._memory.producers import MemoryProducer, MemoryTransactionalProducer
from bus.adapters.kafka.records import Capabilities, Delivery, Headers, Record, TopicPartition
from bus.core.topology import TopicSpec

DEFAULT_MAX_RECORD_BYTES = 1_048_576
"""The producer's limit (max.request.size / message.max.bytes of the real clients)."""


class ManualClock:
    """A clock a test moves by hand: milliseconds since the epoch, as `MemoryEngine(clock=...)` wants."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00:00Z
        self._now = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        with self._lock:
            self._now += ms
            return self._now


class MemoryEngine:
    """An in-memory cluster and the `Engine` that makes clients of it.

    `brokers` is what `describe_cluster` reports (and the largest replication a topic
    may ask for); `max_record_bytes` is the producers' size limit; `clock` gives record
    timestamps and times sessions and transactions; `max_wait` caps, in seconds, how
    long any call blocks (a service's 30 s commit timeout costs a test only that much
    during an outage); `authorizer=False` makes the ACL calls fail as on a cluster
    without one.
    """

    name = "memory"

    def __init__(
        self,
        *,
        brokers: int = 1,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        clock: Callable[[], int] = system_clock,
        max_wait: float | None = None,
        authorizer: bool = True,
        capabilities: Capabilities | None = None,
    ) -> None:
        self._cluster = Cluster(brokers=brokers, clock=clock, max_record_bytes=max_record_bytes,
                                max_wait=max_wait, authorizer=authorizer)
        self.capabilities = capabilities or Capabilities(max_record_bytes=max_record_bytes)
        self._cluster.capabilities = self.capabilities
        self._principal: Principal | None = None
        self.faults = Faults(self._cluster)

    def as_user(self, user: str, password: str) -> MemoryEngine:
        """The same cluster, seen by a SCRAM user: credentials are checked and ACLs enforced."""
        view = copy.copy(self)
        view._principal = Principal(user, password)
        return view

    # -- the Engine protocol ---------------------------------------------------------------

    def producer(self, *, linger_ms: int = 5, client_id: str | None = None) -> MemoryProducer:
        return MemoryProducer(self._cluster, self._principal)

    def transactional_producer(self, transactional_id: str, *, linger_ms: int = 5,
                               transaction_timeout_ms: int = 60_000) -> MemoryTransactionalProducer:
        return MemoryTransactionalProducer(self._cluster, self._principal, transactional_id, transaction_timeout_ms)

    def consumer(
        self,
        *,
        group_id: str | None = None,
        group_instance_id: str | None = None,
        read_committed: bool = True,
        from_beginning: bool = True,
        max_poll_records: int = 500,
        session_timeout_ms: int = 45_000,
        client_id: str | None = None,
    ) -> MemoryConsumer:
        return MemoryConsumer(
            self._cluster, self._principal, group_id=group_id, group_instance_id=group_instance_id,
            read_committed=read_committed, from_beginning=from_beginning, max_poll_records=max_poll_records,
            session_timeout_ms=session_timeout_ms, client_id=client_id,
        )

    def admin(self) -> MemoryAdmin:
        return MemoryAdmin(self._cluster, self._principal)

    # -- for tests -------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, *, replication: int = 1,
                     config: dict[str, str] | None = None) -> None:
        """Create a topic (as an administrator would); nothing happens if it exists."""
        with self._cluster.cond:
            self._cluster.create_topic(TopicSpec(name, partitions, replication, tuple((config or {}).items())))

    def produce_raw(self, topic: str, partition: int, value: bytes | None, *, key: bytes | None = None,
                    headers: Headers = (), timestamp_ms: int | None = None) -> Delivery:
        """Write a record as a hostile client would: any partition, any bytes, no client size limit.

        The broker's own limit (the topic's max.message.bytes) still applies; injected
        faults and outages do not (this is the test writing, not a client under test).
        """
        with self._cluster.cond:
            cluster = self._cluster
            log = cluster.topic(topic).logs[partition]
            timestamp = cluster.now_ms() if timestamp_ms is None else timestamp_ms
            record = Record(topic, partition, log.end, timestamp, key, value, tuple(headers))
            error = cluster.broker_refusal(record)
            if error is not None:
                raise error
            offset = log.append(DataEntry(record, None))
            cluster.cond.notify_all()
            return Delivery(topic, partition, offset)

    def records(self, topic: str, *, partition: int | None = None, read_committed: bool = True) -> list[Record]:
        """Every record of a topic a reader would see, in partition then offset order.

        Injected undecodable records are left out (a consumer returns them by coordinates).
        """
        with self._cluster.cond:
            self._cluster.expire_transactions()
            logs = self._cluster.topic(topic).logs
            chosen = range(len(logs)) if partition is None else [partition]
            return [entry.record for p in chosen for entry in logs[p].entries[:logs[p].high(read_committed)]
                    if isinstance(entry, DataEntry) and logs[p].visible(entry, read_committed)]

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        """A group's committed offsets (next offset to read, per partition)."""
        with self._cluster.cond:
            return dict(self._cluster.group(group_id).committed)


if TYPE_CHECKING:  # the memory engine implements the whole port
    from bus.adapters.kafka.port import Engine, GroupMetadata

    _engine: Engine = MemoryEngine()
    _metadata: GroupMetadata = MemoryGroupMetadata("g", 0, "m", None)

__all__ = ["ManualClock", "MemoryEngine"]
