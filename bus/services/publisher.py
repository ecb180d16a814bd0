"""Publish alerts: validate (already done by the model), seal, produce.

Batching comes from kafka-python's own batching: `publish_many` sends every
record before waiting for any acknowledgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from kafka.errors import KafkaError

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters.schema_files import default_schemas
from bus.config import KafkaSettings
from bus.core.codec import SchemaSet
from bus.core.confidential import EncryptionPolicy
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal
from bus.errors import AlertValidationError, PublishError

log = structlog.get_logger("bus.publisher")

#: Larger alerts are refused before they reach Kafka (brokers default to 1 MiB).
MAX_RECORD_BYTES = 256 * 1024


@dataclass(frozen=True)
class Receipt:
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
    """

    def __init__(
        self,
        settings: KafkaSettings,
        signer: SigningKey,
        *,
        schemas: SchemaSet | None = None,
        create_topics: bool = True,
        producer_options: dict[str, Any] | None = None,
        encryption: EncryptionPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.schemas = schemas or default_schemas()
        self.encryption = encryption
        if create_topics:
            alert_topics = [t for t in kafka_adapter.default_topics() if t.name in kafka_adapter.ALERT_TOPICS]
            kafka_adapter.ensure_topics(settings, alert_topics)
        self._producer = kafka_adapter.producer(settings, **(producer_options or {}))

    def seal(self, alert: BaseAlert) -> SealedRecord:
        if self.encryption is None:
            record = seal(alert, self.signer, self.schemas)
        else:
            record = self.encryption.seal(alert, self.signer, self.schemas)
        size = len(record.value) + len(record.key) + sum(len(k) + len(v) for k, v in record.headers)
        if size > MAX_RECORD_BYTES:
            raise AlertValidationError([("alert", f"encoded size {size} bytes exceeds {MAX_RECORD_BYTES}")])
        return record

    def publish(self, alert: BaseAlert, timeout: float = 30.0) -> Receipt:
        return self.publish_many([alert], timeout=timeout)[0]

    def publish_many(self, alerts: Iterable[BaseAlert], timeout: float = 60.0) -> list[Receipt]:
        """Seal everything first (nothing is sent if any alert is bad), then send as a batch."""
        sealed = [(alert, self.seal(alert)) for alert in alerts]
        futures = [
            (alert, self._producer.send(rec.topic, key=rec.key, value=rec.value, headers=rec.headers))
            for alert, rec in sealed
        ]
        self._producer.flush(timeout=timeout)
        receipts = []
        for alert, future in futures:
            try:
                meta = future.get(timeout=timeout)
            except KafkaError as exc:
                raise PublishError(f"alert {alert.header.message_id} not acknowledged: {exc}") from exc
            receipt = Receipt(
                str(alert.header.message_id), alert.alert_type.value, meta.topic, meta.partition, meta.offset
            )
            log.info("published", **receipt.as_dict(), producer=alert.header.producer)
            receipts.append(receipt)
        return receipts

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout=timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
