"""Acknowledging an alert: a recipient tells the originator it saw, used or acted on it.

The acknowledgement is a record signed by the acknowledging member (`bus.core.receipts`)
produced to `acks` with the **acknowledged alert's record key**, so that it lands in the
alert's routing task: there the router checks that this member really received the
alert, then forwards the acknowledgement to the originator's receipts. The key is
found in the member's own feed (the copy the router delivered), so the member needs
nothing but its feed to acknowledge.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bus.adapters.kafka import Delivery, Engine, Producer, Record, TopicPartition, wire_headers
from bus.core.keys import SigningKey
from bus.core.receipts import AckStatus, sign_ack
from bus.core.topology import ACKS_TOPIC, feed_topic
from bus.errors import BusError

LOOKBACK = timedelta(minutes=10)
"""How far before an alert's own creation time (in its UUIDv7 id) its feed copy is searched from."""


def created_of(message_id: str) -> datetime | None:
    """The creation time a UUIDv7 message id carries (its first 48 bits, in ms), if it is one."""
    value = uuid.UUID(message_id)
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)


@dataclass(frozen=True)
class Acknowledged:
    message_id: str
    status: AckStatus
    delivery: Delivery
    record_key: bytes


class Acknowledger:
    """Publishes acknowledgements as one member (the owner of `signer`)."""

    def __init__(self, engine: Engine, signer: SigningKey, *, feed: str | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self.feed = feed or feed_topic(signer.member)
        self._producer: Producer | None = None

    def record_key(self, message_id: str, timeout: float = 60.0) -> bytes:
        """The record key of alert `message_id` as delivered to this member's feed."""
        wanted = message_id.encode("ascii")
        consumer = self.engine.consumer(read_committed=True)
        probe = self.engine.consumer(read_committed=True)  # offsets on another client (see ReceiptReader)
        try:
            partitions = probe.partitions_for(self.feed)
            if not partitions:
                raise BusError(f"feed {self.feed} does not exist or {self.signer.member} may not read it")
            tps = [TopicPartition(self.feed, p) for p in partitions]
            created = created_of(message_id)
            starts = probe.offsets_for_time(tps, int((created - LOOKBACK).timestamp() * 1000)) if created else {}
            ends = {tp: probe.watermarks(tp)[1] for tp in tps}
            consumer.assign(tps, offsets={tp: start if (start := starts.get(tp)) is not None
                                          else (0 if created is None else ends[tp]) for tp in tps})
            remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                for polled in consumer.poll(0.5, 1000):
                    if isinstance(polled, Record) and wanted in polled.header_values(b"ce_id"):
                        if polled.key is None:
                            raise BusError(f"alert {message_id} in {self.feed} has no record key")
                        return polled.key
                remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
        finally:
            consumer.close()
            probe.close()
        raise BusError(f"alert {message_id} is not in {self.feed}: a member acknowledges only alerts "
                       "the router delivered to it")

    def ack(self, message_id: str, status: AckStatus, note: str | None = None, *,
            record_key: bytes | None = None, timeout: float = 30.0) -> Acknowledged:
        """Sign and publish one acknowledgement; returns where it was stored."""
        message_id = str(uuid.UUID(message_id))
        key = record_key if record_key is not None else self.record_key(message_id)
        value, headers = sign_ack(self.signer, key, message_id, status, note, datetime.now(UTC))
        if self._producer is None:
            self._producer = self.engine.producer()
        delivery = self._producer.send(ACKS_TOPIC, value, key=key, headers=wire_headers(headers)).result(timeout)
        return Acknowledged(message_id, status, delivery, key)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> Acknowledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
