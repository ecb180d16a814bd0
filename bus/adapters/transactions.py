"""Finishing a Kafka transaction within a time limit, and dropping a producer that cannot.

kafka-python's `send_offsets_to_transaction`, `commit_transaction` and `abort_transaction`
wait on their result with no timeout. In kafka-python 3.0.12 that wait can last forever:
when the transaction coordinator dies just as a request is handed to it, the sender
looks the coordinator up again but drops the request instead of re-queueing it
(`Sender._maybe_send_pending_request`, the exception branch with a target node set),
so its result is never completed. We saw this in most runs of the broker-crash test.

So the router never waits unbounded: it waits here for at most `timeout` seconds,
and a transaction that does not finish in time is treated like a crash. The producer
is discarded and a new one with the same transactional id is initialised, which
fences the old one and makes the coordinator abort (or complete) its open transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

log = structlog.get_logger("bus.kafka.transactions")


class TransactionStuck(KafkaTimeoutError):
    """A transaction step did not finish in time; its outcome is unknown until the id is re-initialised."""


def commit(
    producer: KafkaProducer,
    offsets: Mapping[TopicPartition, OffsetAndMetadata],
    group_metadata: Any,
    timeout: float,
) -> None:
    """Add the consumer offsets to the open transaction and commit it, each step within `timeout` s."""
    manager = producer._transaction_manager
    _await(producer, manager.send_offsets_to_transaction(dict(offsets), group_metadata), "send offsets", timeout)
    _await(producer, manager.begin_commit(), "commit", timeout)


def _await(producer: KafkaProducer, result: Any, step: str, timeout: float) -> None:
    producer._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout * 1000)):  # raises the step's error if it failed
        raise TransactionStuck(f"transaction step '{step}' did not finish within {timeout:g} s")


def discard(producer: KafkaProducer) -> None:
    """Stop a producer at once, without flushing or finishing its transaction.

    `close(timeout=0)` alone is not enough: it first flushes, which raises while batches
    for a dead leader are pending, and would leave the sender thread running.
    """
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
    try:
        producer.close(timeout=0)
    except KafkaError as exc:  # pending batches fail; the new producer's fencing settles them
        log.debug("discarded producer did not close cleanly", error=str(exc))
