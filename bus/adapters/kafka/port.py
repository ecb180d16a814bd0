"""The Kafka port: the small interface every service talks to.

Services (publisher, reader, router, provisioning, connectors, console) depend
on these protocols only. Three engines implement them:

- `confluent` (confluent-kafka / librdkafka): the default, about twice as fast;
- `kafka-python`: the pure-Python client the project's design names, kept working;
- `memory`: an in-process cluster for unit tests of the services (like httpx's
  `MockTransport`); integration tests always use a real broker.

Rules every engine keeps:

- Errors are `bus.errors.KafkaError` subclasses, never a client's own exception.
- Every blocking call takes a timeout (seconds) and raises `OutcomeUnknown` when it
  runs out on something that may still happen (a commit), `KafkaUnavailable` when no
  broker answered, `AuthenticationFailed` / `NotAuthorized` / `TlsFailed` as soon
  as the broker says so.
- Headers are bytes both ways; a record the client cannot decode comes out of
  `poll` as an `UndecodableRecord`, and the consumer moves past it.
- Producers place keyed records with murmur2 (the Java client's default), so a
  record lands where any Kafka client would put it: the router checks placement.
- Rebalance callbacks run inside `poll`, on the caller's thread.
- Client log lines go to the `bus.kafka` logger at DEBUG, never to the console.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from bus.adapters.kafka.records import (
    Capabilities,
    ClusterInfo,
    Delivery,
    Headers,
    Polled,
    TopicInfo,
    TopicPartition,
)
from bus.core.acl_plan import AclBinding
from bus.core.topology import TopicSpec


class DeliveryFuture(Protocol):
    """The broker's answer to one `send`."""

    def result(self, timeout: float) -> Delivery:
        """Where the record landed; raises the typed error if it was not stored,
        `OutcomeUnknown` if no answer came within `timeout` seconds."""
        ...

    def done(self) -> bool: ...


class Producer(Protocol):
    """Idempotent, acks=all. Thread-safe: connectors publish from many threads."""

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> DeliveryFuture:
        """Queue a record. Raises `RecordTooLarge` at once for a record over the client limit."""
        ...

    def flush(self, timeout: float) -> None:
        """Wait until every queued record is answered; `OutcomeUnknown` if some are not."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Flush within `timeout`, then release the client (never raises)."""
        ...


class GroupMetadata(Protocol):
    """Opaque consumer-group state that a transaction commits offsets against."""


class TransactionalProducer(Protocol):
    """One transactional id; begin -> send... -> send_offsets -> commit (or abort)."""

    transactional_id: str

    def init(self, timeout: float) -> None:
        """Register the id; fences any older producer with it and settles its open transaction."""
        ...

    def begin(self) -> None: ...

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> DeliveryFuture: ...

    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: GroupMetadata, timeout: float
    ) -> None:
        """Commit consumer positions (next offset to read) as part of this transaction.
        Empty `offsets`: nothing is sent. The broker refuses metadata from before a
        rebalance or of a member that left (KIP-447): a `KafkaError`, then abort."""
        ...

    def commit(self, timeout: float) -> None:
        """Commit. `Fenced` if another instance took over; `OutcomeUnknown` on timeout;
        any other `KafkaError` means the transaction must be aborted."""
        ...

    def abort(self, timeout: float) -> None: ...

    def close(self, timeout: float = 10.0) -> None:
        """Release the client without committing (never raises)."""
        ...


class RebalanceListener(Protocol):
    """Called inside `Consumer.poll` when the group changes this consumer's partitions."""

    def on_assigned(self, partitions: list[TopicPartition]) -> None: ...

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        """The partitions go to another member after this returns: finish work on them first."""
        ...

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """The partitions were taken away without a clean hand-over: drop their state."""
        ...


class Consumer(Protocol):
    """read_committed by default; offsets are committed explicitly (or in a transaction)."""

    def subscribe(
        self,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
    ) -> None:
        """Join the group for `topics` or a regex `pattern` (e.g. r"^alerts\\..+")."""
        ...

    def assign(self, partitions: Sequence[TopicPartition],
               offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Read exactly these partitions, without a group; from `offsets` where given.

        Starting offsets belong here rather than in a `seek` right after: librdkafka starts
        fetching at once and may hand out records from before such a seek."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def poll(self, timeout: float, max_records: int = 500) -> list[Polled]:
        """Up to `max_records` records, waiting at most `timeout` seconds for the first."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next record to read; `OFFSET_BEGINNING` / `OFFSET_END` are accepted."""
        ...

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record `poll` would return for an assigned partition."""
        ...

    def watermarks(self, tp: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
        """(low, high): the oldest retained offset and the offset after the last stable one."""
        ...

    def offsets_for_time(
        self, partitions: Collection[TopicPartition], timestamp_ms: int, timeout: float = 10.0
    ) -> dict[TopicPartition, int | None]:
        """The first offset at or after `timestamp_ms` per partition (None: none that late)."""
        ...

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        """Partition ids of a topic; [] if it does not exist. `NotAuthorized` (naming the topic)
        if this principal may not describe it (Kafka answers so whether or not it exists)."""
        ...

    def topics(self, timeout: float = 10.0) -> set[str]:
        """Topics this principal may see."""
        ...

    def committed(
        self, partitions: Collection[TopicPartition], timeout: float = 10.0
    ) -> dict[TopicPartition, int | None]: ...

    def commit(self, offsets: Mapping[TopicPartition, int], timeout: float = 10.0) -> None:
        """Commit positions (next offset to read) for the group, synchronously.
        Empty `offsets`: nothing is sent (a member without partitions may call it)."""
        ...

    def group_metadata(self) -> GroupMetadata: ...

    def pause(self, partitions: Collection[TopicPartition]) -> None: ...

    def resume(self, partitions: Collection[TopicPartition]) -> None: ...

    def close(self) -> None:
        """Leave the group (without committing) and release the client (never raises).
        No listener is called: finish work on the partitions before closing."""
        ...


class Admin(Protocol):
    """Topics, configs, ACLs, SCRAM users and the cluster's shape."""

    def describe_cluster(self, timeout: float = 10.0) -> ClusterInfo: ...

    def list_topics(self, timeout: float = 10.0) -> set[str]: ...

    def describe_topics(self, names: Collection[str], timeout: float = 10.0) -> dict[str, TopicInfo]:
        """Topics that exist among `names` (missing ones are left out)."""
        ...

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float = 30.0) -> list[str]:
        """Create the missing ones and wait until they are usable; return the names created.
        Topics that already exist are skipped; `NotAuthorized` if creation is denied."""
        ...

    def create_partitions(self, counts: Mapping[str, int], timeout: float = 30.0) -> None: ...

    def describe_configs(
        self, topics: Collection[str], timeout: float = 10.0
    ) -> dict[str, dict[str, str]]:
        """Every config value of each topic (defaults included)."""
        ...

    def alter_configs(self, changes: Mapping[str, Mapping[str, str]], timeout: float = 30.0) -> None:
        """Set these configs on these topics, leaving the others alone (incremental)."""
        ...

    def describe_acls(self, timeout: float = 10.0) -> list[AclBinding]:
        """Every binding the cluster has that `AclBinding` can express.
        Raises `ProtocolMismatch` if the cluster has no authorizer (kafka-python; librdkafka
        answers [] there, so the confluent engine cannot tell)."""
        ...

    def create_acls(self, bindings: Sequence[AclBinding], timeout: float = 30.0) -> None: ...

    def delete_acls(self, bindings: Sequence[AclBinding], timeout: float = 30.0) -> None: ...

    def scram_users(self, timeout: float = 10.0) -> set[str]:
        """Users that have a SCRAM-SHA-512 credential."""
        ...

    def upsert_scram_user(self, user: str, password: str, iterations: int = 8192,
                          timeout: float = 30.0) -> None: ...

    def delete_scram_user(self, user: str, timeout: float = 30.0) -> None: ...

    def close(self) -> None: ...


class Engine(Protocol):
    """Builds clients that share one set of connection settings."""

    name: str
    capabilities: Capabilities
    """What this engine's producers can send (see `Capabilities`)."""

    def producer(self, *, linger_ms: int = 5, client_id: str | None = None) -> Producer: ...

    def transactional_producer(self, transactional_id: str, *, linger_ms: int = 5,
                               transaction_timeout_ms: int = 60_000) -> TransactionalProducer: ...

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
    ) -> Consumer:
        """A consumer. With `group_id`, partitions are assigned with the range assignor,
        so co-partitioned topics give each member the same partition numbers."""
        ...

    def admin(self) -> Admin: ...


EngineFactory = Callable[..., Engine]
