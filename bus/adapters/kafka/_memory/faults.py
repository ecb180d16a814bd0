"""Failures a service test switches on: `engine.faults.<what>(...)`.

Each is one thing a real cluster does to a client, made to happen exactly when a
test wants it: a commit whose answer is lost, a record the broker refuses, a
cluster that goes away and comes back, a record no client can decode, a consumer
whose session expired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bus.adapters.kafka._memory.cluster import Cluster, CommitFault, SendFault
from bus.adapters.kafka._memory.consumer import MemoryConsumer
from bus.adapters.kafka._memory.log import UndecodableEntry
from bus.adapters.kafka.records import Record
from bus.errors import KafkaError, KafkaOperationFailed


class Faults:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def next_commit_unknown(self, *, applied: bool = False, transactional_id: str | None = None) -> None:
        """The next transactional commit (of `transactional_id`, or of any producer) raises `OutcomeUnknown`.

        With `applied=False` the request was lost: nothing is committed. With
        `applied=True` the answer was lost: the transaction is committed. Either way
        the producer then accepts only `commit` again, or a new producer's `init`.
        """
        with self._cluster.cond:
            self._cluster.commit_faults.append(CommitFault(applied, transactional_id))

    def fail_sends(self, topic: str, error: type[KafkaError] = KafkaOperationFailed, *,
                   when: Callable[[Record], bool] | None = None, times: int | None = None) -> None:
        """The broker refuses records to `topic` (those `when` picks; the next `times` of them, or all).

        The record's `DeliveryFuture` raises `error` (e.g. `RecordTooLarge`), and a
        transaction that held it can only be aborted. `when` sees the record as it
        would be stored, with offset -1.
        """
        with self._cluster.cond:
            self._cluster.send_faults.append(SendFault(topic, error, when, times))

    def go_down(self) -> None:
        """No broker answers: sends wait, commits end in `OutcomeUnknown`, reads in `KafkaUnavailable`."""
        with self._cluster.cond:
            self._cluster.available = False
            self._cluster.cond.notify_all()

    def come_back(self) -> None:
        """The brokers answer again; records sent meanwhile are stored, in order."""
        with self._cluster.cond:
            self._cluster.available = True
            self._cluster.drain()
            self._cluster.cond.notify_all()

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.go_down()
        try:
            yield
        finally:
            self.come_back()

    def inject_undecodable(self, topic: str, partition: int, problem: str = "header name is not UTF-8") -> int:
        """Put a record no client can decode at the partition's next offset; return that offset.

        Consumers return it as an `UndecodableRecord` and move past it.
        """
        with self._cluster.cond:
            log = self._cluster.topic(topic).logs[partition]
            offset = log.append(UndecodableEntry(problem))
            self._cluster.cond.notify_all()
            return offset

    def expire_member(self, consumer: MemoryConsumer) -> None:
        """The consumer's session expires: the group drops it and rebalances without it.

        At its next `poll` the consumer calls `on_lost` with what it held, then joins
        again as a new member; until then its offset commits are refused.
        """
        with self._cluster.cond:
            member_id = consumer.member_id
            if consumer.group_id is None or member_id is None:
                raise ValueError("only a consumer that has joined a group can expire")
            self._cluster.group(consumer.group_id).leave(member_id, self._cluster.now_ms())
            self._cluster.cond.notify_all()

    def clear(self) -> None:
        """Forget every pending commit and send fault, and bring the cluster back."""
        with self._cluster.cond:
            self._cluster.commit_faults.clear()
            self._cluster.send_faults.clear()
        self.come_back()
