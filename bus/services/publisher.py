"""Publish alerts: validate (already done by the model), seal, produce on the Kafka port.

`publish_many` seals every alert before sending any (one bad alert sends nothing),
then sends them all before waiting for the first acknowledgement, so the engine
batches them. Build one with `bus.composition.Bus.publisher`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from bus.adapters.kafka import DeliveryFuture, Producer, wire_headers
from bus.adapters.schema_files import default_schemas
from bus.config import KafkaSettings
from bus.core.codec import SchemaSet
from bus.core.confidential import EncryptionPolicy
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal
from bus.errors import AlertValidationError, OutcomeUnknown, PublishError

log = structlog.get_logger("bus.publisher")

MAX_RECORD_BYTES = 256 * 1024
"""Larger alerts are refused before they reach Kafka (brokers default to 1 MiB). The router
applies the same limit to what it reads (issue 9), so an alert it accepts is one it can forward."""


def encoded_size(record: SealedRecord) -> int:
    """Bytes of key, value and every header name and value: what counts against the limit."""
    return len(record.key) + len(record.value) + sum(len(k.encode()) + len(v) for k, v in record.headers)


def size_problem(record: SealedRecord) -> str | None:
    """Why a sealed record is too large to publish, or None."""
    size = encoded_size(record)
    return f"encoded size {size} bytes exceeds {MAX_RECORD_BYTES}" if size > MAX_RECORD_BYTES else None


@dataclass(frozen=True)
class Receipt:
    """Where Kafka stored a published alert (the broker's acknowledgement, not the router's)."""

    message_id: str
    alert_type: str
    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "alert_type": self.alert_type,
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
        }


class Publisher:
    """Signs alerts as one member and produces them to `alerts.<type>`.

    `encryption` decides which alerts are encrypted to their recipients
    (`bus.core.confidential.EncryptionPolicy`). Without it every alert goes in clear:
    `bus publish` and the connectors always pass one (default mode: TLP:RED and H2/H3).

    The publisher owns `producer` and closes it. A `KafkaSettings` in its place is accepted
    for code written before the composition root: the engine the settings name is opened
    through `bus.composition`, and the alert topics are created if missing.
    """

    def __init__(
        self,
        producer: Producer | KafkaSettings,
        signer: SigningKey,
        *,
        schemas: SchemaSet | None = None,
        encryption: EncryptionPolicy | None = None,
    ) -> None:
        if isinstance(producer, KafkaSettings):
            from bus.composition import Bus

            bus = Bus(producer)
            bus.ensure_alert_topics()
            producer = bus.engine.producer()
        self._producer = producer
        self.signer = signer
        self.schemas = schemas or default_schemas()
        self.encryption = encryption

    def seal(self, alert: BaseAlert) -> SealedRecord:
        """The signed (and, as the policy says, encrypted) record, or `AlertValidationError`."""
        if self.encryption is None:
            record = seal(alert, self.signer, self.schemas)
        else:
            record = self.encryption.seal(alert, self.signer, self.schemas)
        problem = size_problem(record)
        if problem is not None:
            raise AlertValidationError([("alert", problem)])
        return record

    def publish(self, alert: BaseAlert, timeout: float = 30.0) -> Receipt:
        return self.publish_many([alert], timeout=timeout)[0]

    def publish_many(self, alerts: Iterable[BaseAlert], timeout: float = 60.0) -> list[Receipt]:
        """Seal everything first (nothing is sent if any alert is bad), then send as a batch.

        Raises the port's typed errors (`KafkaUnavailable`, `NotAuthorized` naming the topic,
        ...) as they are, and `PublishError` when Kafka did not answer within `timeout`
        seconds: those alerts may or may not be stored.
        """
        sealed = [(alert, self.seal(alert)) for alert in alerts]
        futures: list[tuple[BaseAlert, DeliveryFuture]] = [
            (alert, self._producer.send(rec.topic, rec.value, key=rec.key, headers=wire_headers(rec.headers)))
            for alert, rec in sealed
        ]
        receipts = []
        try:
            self._producer.flush(timeout)
            for alert, future in futures:
                delivery = future.result(timeout)
                receipt = Receipt(str(alert.header.message_id), alert.alert_type.value,
                                  delivery.topic, delivery.partition, delivery.offset)
                log.info("published", **receipt.as_dict(), producer=alert.header.producer)
                receipts.append(receipt)
        except OutcomeUnknown as exc:
            unanswered = [str(a.header.message_id) for a, f in futures if not f.done()]
            raise PublishError(f"Kafka did not acknowledge {len(unanswered) or len(futures)} alert(s) within "
                               f"{timeout:g} s ({', '.join(unanswered[:5])}{', ...' if len(unanswered) > 5 else ''});"
                               " they may or may not be published") from exc
        return receipts

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
