"""Publishing that survives Kafka outages, and says clearly when it cannot.

A connector acknowledges its upstream source only after `publish` returned,
i.e. after Kafka acknowledged every alert with acks=all on an idempotent
producer; if Kafka stays away for the whole retry budget, `KafkaDown` tells the
caller that nothing further was acknowledged, so the source keeps the alerts.
After a failure the producer is discarded and rebuilt: kafka-python keeps
retrying buffered records in the background, and a fresh producer is the only
way to know what state we are in.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence

import structlog
from kafka.errors import KafkaError

from bus.adapters.schema_files import default_schemas
from bus.config import KafkaSettings
from bus.core.codec import SchemaSet
from bus.core.confidential import EncryptionPolicy
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.errors import AlertValidationError, BusError
from bus.services.publisher import MAX_RECORD_BYTES, Publisher, Receipt
from connectors.sdk.config import PublishSettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.retry import Backoff

log = structlog.get_logger("connectors.publishing")

PublisherFactory = Callable[..., Publisher]


class KafkaDown(BusError):
    """Kafka did not acknowledge within the retry budget: nothing more was accepted."""


class KafkaUnreachable(BusError):
    """No bootstrap server accepted a TCP connection."""


def probe_bootstrap(settings: KafkaSettings, timeout: float) -> None:
    """Fail in `timeout` seconds, not kafka-python's 30 s bootstrap, when nobody listens."""
    problems = []
    for server in settings.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{server}: {exc}")
    raise KafkaUnreachable(f"cannot reach Kafka at {settings.describe()}: {'; '.join(problems)}")


def encryption_policy(options: PublishSettings) -> EncryptionPolicy:
    """What the connector encrypts, with the directory file it finds recipients' keys in."""
    if options.federation is None or options.authority_pub is None:
        return EncryptionPolicy(options.encrypt)
    from bus.adapters.federation_file import WatchedDirectory

    return EncryptionPolicy(options.encrypt, WatchedDirectory(options.federation, options.authority_pub))


class ReliablePublisher:
    """Thread-safe: the HTTP connector publishes from many request threads at once."""

    def __init__(
        self,
        kafka: KafkaSettings,
        signer: SigningKey,
        options: PublishSettings,
        metrics: ConnectorMetrics,
        stop: threading.Event,
        *,
        factory: PublisherFactory = Publisher,
        schemas: SchemaSet | None = None,
    ) -> None:
        # kafka-python's own bootstrap wait is 30 s unless told otherwise
        self.kafka = kafka.model_copy(update={"bootstrap_timeout_ms": int(options.connect_timeout_s * 1000)})
        self.signer = signer
        self.options = options
        self.metrics = metrics
        self.stop = stop
        self._factory = factory
        self.encryption = encryption_policy(options)
        self.schemas = schemas or default_schemas()
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._ok = False
        self.last_error: str | None = None

    @property
    def kafka_ok(self) -> bool:
        return self._ok

    def producer_options(self) -> dict[str, int]:
        ack_ms = int(self.options.ack_timeout_s * 1000)
        return {
            "max_block_ms": int(self.options.max_block_s * 1000),
            "request_timeout_ms": max(1000, min(30000, ack_ms - 100)),
            "delivery_timeout_ms": max(1200, ack_ms),
        }

    def _connect(self) -> Publisher:
        with self._lock:
            if self._publisher is None:
                probe_bootstrap(self.kafka, self.options.connect_timeout_s)
                self._publisher = self._factory(
                    self.kafka, self.signer, schemas=self.schemas, create_topics=self.options.create_topics,
                    producer_options=self.producer_options(), encryption=self.encryption,
                )
                log.info("kafka connected", bootstrap=self.kafka.describe())
            return self._publisher

    def check(self) -> bool:
        """Refresh readiness: reconnect if needed, else confirm a broker still answers."""
        try:
            if self._publisher is None:
                self._connect()
            else:
                probe_bootstrap(self.kafka, self.options.connect_timeout_s)
        except (KafkaError, BusError) as exc:
            self._mark_failed(exc, "connect")
            return False
        self._mark_ok()
        return True

    def sealing_problems(self, alert: BaseAlert) -> list[str]:
        """Problems only sealing reveals (encoded size, producer, encryption), as "field: message"."""
        if alert.header.producer != self.signer.member:
            return [f"header.producer: {alert.header.producer} is not this connector's member "
                    f"{self.signer.member}"]
        try:
            record = self.encryption.seal(alert, self.signer, self.schemas)
        except AlertValidationError as exc:  # EncryptionError: no recipients, no key for one
            return [f"{path}: {message}" for path, message in exc.errors]
        size = len(record.value) + len(record.key) + sum(len(k) + len(v) for k, v in record.headers)
        if size > MAX_RECORD_BYTES:
            return [f"alert: encoded size {size} bytes exceeds {MAX_RECORD_BYTES}"]
        return []

    def publish(self, alerts: Sequence[BaseAlert], *, attempts: int | None = None) -> list[Receipt]:
        """Every alert acknowledged, in order, or KafkaDown (or AlertValidationError, not retried)."""
        if not alerts:
            return []
        for alert in alerts:
            if alert.header.producer != self.signer.member:
                raise BusError(f"alert {alert.header.message_id} names producer {alert.header.producer}, "
                               f"but this connector signs as {self.signer.member}")
        attempts = attempts or self.options.retry.attempts
        delays = Backoff.from_settings(self.options.retry).delays()
        for attempt in range(1, attempts + 1):
            try:
                publisher = self._connect()
                started = time.monotonic()
                receipts = publisher.publish_many(alerts, timeout=self.options.ack_timeout_s)
            except AlertValidationError:
                raise
            except (KafkaError, BusError) as exc:
                self._mark_failed(exc, "publish" if self._publisher else "connect", attempt=attempt)
                self._discard()
                if attempt == attempts:
                    raise KafkaDown(f"Kafka did not acknowledge {len(alerts)} alert(s) after "
                                    f"{attempts} attempt(s): {exc}") from exc
                if self.stop.wait(next(delays)):
                    raise KafkaDown("shutting down before Kafka acknowledged") from exc
                continue
            self.metrics.observe_latency(time.monotonic() - started)
            for receipt in receipts:
                self.metrics.published_inc(receipt.alert_type)
            self._mark_ok()
            return receipts
        raise AssertionError("unreachable")

    def _mark_ok(self) -> None:
        if not self._ok:
            log.info("kafka available", bootstrap=self.kafka.describe())
        self._ok, self.last_error = True, None
        self.metrics.set_ready(True)

    def _mark_failed(self, exc: Exception, kind: str, attempt: int | None = None) -> None:
        self.metrics.kafka_error(kind)
        self._ok, self.last_error = False, str(exc)
        self.metrics.set_ready(False)
        log.warning("kafka unavailable", kind=kind, attempt=attempt, error=str(exc))

    def _discard(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.close(timeout=0)
            except Exception as exc:  # closing a broken producer may fail in many ways
                log.debug("producer close failed", error=str(exc))

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (graceful shutdown), then release the producer."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.close(timeout=timeout)
            except Exception as exc:
                log.warning("producer close failed", error=str(exc))
