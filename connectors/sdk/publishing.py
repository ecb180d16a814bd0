"""Publishing that survives Kafka outages, and says clearly when it cannot.

A connector acknowledges its upstream source only after `publish` returned,
i.e. after Kafka acknowledged every alert with acks=all on an idempotent
producer. If Kafka stays away for the whole retry budget, `PublishError` tells
the caller that nothing further was acknowledged (its `__cause__` is the Kafka
error: unreachable, timed out, not authorised...), so the source keeps the alerts.
After a failure the producer is discarded and rebuilt: a client keeps retrying
buffered records in the background, and a fresh producer is the only way to know
what state we are in.

What is retried: Kafka being unreachable or slow (`KafkaUnavailable`,
`OutcomeUnknown`, `PublishError`, other `KafkaOperationFailed`). What is not: an
alert that is wrong (`InvalidInput`), and settings that will not get better by
waiting (`AuthenticationFailed`, `NotAuthorized`, `TlsFailed`, `ProtocolMismatch`,
`RecordTooLarge`), which fail the batch at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import structlog

from bus.adapters.kafka import ENGINES, check_reachable
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.confidential import EncryptionPolicy
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.errors import (
    AlertValidationError,
    AuthenticationFailed,
    BusError,
    InvalidInput,
    KafkaError,
    NotAuthorized,
    ProtocolMismatch,
    PublishError,
    RecordTooLarge,
    TlsFailed,
)
from bus.services.publisher import Publisher, Receipt, size_problem
from connectors.sdk.config import PublishSettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.retry import Backoff

log = structlog.get_logger("connectors.publishing")

PublisherFactory = Callable[[], Publisher]

DECISIVE = (AuthenticationFailed, NotAuthorized, TlsFailed, ProtocolMismatch, RecordTooLarge)
"""Kafka errors that waiting does not cure: the batch fails at once, without retries."""


def connector_settings(kafka: KafkaSettings, options: PublishSettings) -> KafkaSettings:
    """The Kafka settings a connector publishes with: connecting gives up after
    `connect_timeout_s`, so an upstream caller hears "Kafka is down" fast."""
    return kafka.model_copy(update={"bootstrap_timeout_ms": int(options.connect_timeout_s * 1000)})


def encryption_policy(options: PublishSettings) -> EncryptionPolicy:
    """What the connector encrypts, with the directory file it finds recipients' keys in."""
    if options.federation is None or options.authority_pub is None:
        return EncryptionPolicy(options.encrypt)
    from bus.adapters.federation_file import WatchedDirectory

    return EncryptionPolicy(options.encrypt, WatchedDirectory(options.federation, options.authority_pub))


class ReliablePublisher:
    """Thread-safe: the HTTP connector publishes from many request threads at once.

    `bus` is the composition root the publisher is built from (`bus.publisher`), or
    `factory` builds one (tests)."""

    def __init__(
        self,
        bus: Bus,
        signer: SigningKey,
        options: PublishSettings,
        metrics: ConnectorMetrics,
        stop: threading.Event,
        *,
        factory: PublisherFactory | None = None,
        published: Callable[[str], object] | None = None,
    ) -> None:
        """`published` is told each message id Kafka acknowledged (the receipts follower's
        `published`: the id is pending until its receipt arrives)."""
        self.bus = bus
        self.kafka = bus.settings
        self.signer = signer
        self.options = options
        self.metrics = metrics
        self.stop = stop
        self.encryption = encryption_policy(options)
        self.schemas = bus.schemas
        self._factory = factory or self._build
        self.published = published
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._ok = False
        self.last_error: str | None = None

    @property
    def kafka_ok(self) -> bool:
        return self._ok

    def _build(self) -> Publisher:
        return self.bus.publisher(self.signer, encryption=self.encryption, create_topics=self.options.create_topics)

    def _probe(self) -> None:
        """`KafkaUnavailable` in `connect_timeout_s` when nobody listens (a 503 must be fast).
        An engine without network addresses (the in-memory one of unit tests) shows its
        outages when publishing instead."""
        if self.bus.engine.name in ENGINES:
            check_reachable(self.kafka, self.options.connect_timeout_s)

    def _connect(self) -> Publisher:
        with self._lock:
            if self._publisher is None:
                self._probe()
                self._publisher = self._factory()
                log.info("kafka connected", bootstrap=self.kafka.describe(), engine=self.bus.engine.name)
            return self._publisher

    def check(self) -> bool:
        """Refresh readiness: reconnect if needed, else confirm a broker still answers."""
        try:
            if self._publisher is None:
                self._connect()
            else:
                self._probe()
        except KafkaError as exc:
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
        problem = size_problem(record)
        return [f"alert: {problem}"] if problem is not None else []

    def publish(self, alerts: Sequence[BaseAlert], *, attempts: int | None = None) -> list[Receipt]:
        """Every alert acknowledged, in order; or `PublishError` (nothing more was acknowledged),
        or `InvalidInput` (an alert is wrong: never retried)."""
        if not alerts:
            return []
        for alert in alerts:
            if alert.header.producer != self.signer.member:
                raise InvalidInput(f"alert {alert.header.message_id} names producer {alert.header.producer}, "
                                   f"but this connector signs as {self.signer.member}",
                                   [("header.producer", f"must be {self.signer.member}")])
        attempts = attempts or self.options.retry.attempts
        delays = Backoff.from_settings(self.options.retry).delays()
        for attempt in range(1, attempts + 1):
            try:
                publisher = self._connect()
                started = time.monotonic()
                receipts = publisher.publish_many(alerts, timeout=self.options.ack_timeout_s)
            except InvalidInput:
                raise
            except DECISIVE as exc:
                self._mark_failed(exc, "publish" if self._publisher else "connect", attempt=attempt)
                self._discard()
                raise PublishError(f"Kafka refused {len(alerts)} alert(s): {exc}") from exc
            except (KafkaError, PublishError) as exc:
                self._mark_failed(exc, "publish" if self._publisher else "connect", attempt=attempt)
                self._discard()
                if attempt == attempts:
                    raise PublishError(f"Kafka did not acknowledge {len(alerts)} alert(s) after "
                                       f"{attempts} attempt(s): {exc}") from exc
                if self.stop.wait(next(delays)):
                    raise PublishError("shutting down before Kafka acknowledged") from exc
                continue
            self.metrics.observe_latency(time.monotonic() - started)
            for receipt in receipts:
                self.metrics.published_inc(receipt.alert_type)
                if self.published is not None:
                    self.published(receipt.message_id)
            self._mark_ok()
            return receipts
        raise AssertionError("unreachable")

    def _mark_ok(self) -> None:
        if not self._ok:
            log.info("kafka available", bootstrap=self.kafka.describe())
        self._ok, self.last_error = True, None
        self.metrics.set_ready(True)

    def _mark_failed(self, exc: BusError, kind: str, attempt: int | None = None) -> None:
        self.metrics.kafka_error(kind)
        self._ok, self.last_error = False, str(exc)
        self.metrics.set_ready(False)
        event = "kafka refused" if isinstance(exc, DECISIVE) else "kafka unavailable"  # no retry cures a refusal
        log.warning(event, kind=kind, attempt=attempt, error=str(exc), error_type=type(exc).__name__)

    def _discard(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close(timeout=0)  # the port's close never raises

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (graceful shutdown), then release the producer."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close(timeout=timeout)
