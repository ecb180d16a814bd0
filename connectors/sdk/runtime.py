"""Connector lifecycle: start, serve health and metrics, stop gracefully.

A connector only implements `run()` (work until `stop` is set); the runtime
owns everything operational around it so that every connector starts, logs,
reports and shuts down the same way. SIGTERM/SIGINT set `stop`: the connector
finishes the batch in hand, the producer is flushed, then the process exits 0.
A second signal kills immediately.
"""

from __future__ import annotations

import signal
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any, ClassVar

import structlog

from bus import logs
from bus.adapters.health import HealthServer
from bus.adapters.kafka import Engine
from bus.adapters.keystore import check_key_owner_files, load_signing_key
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.composition import Bus
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.keys import SigningKey
from connectors.sdk.config import ConnectorSettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher, connector_settings
from connectors.sdk.receipts import AlertStatuses, ReceiptCallback, ReceiptFollower

#: A connector that has not reported progress for this long is reported dead.
LIVENESS_TIMEOUT_S = 120.0
KAFKA_CHECK_INTERVAL_S = 5.0


@dataclass
class Services:
    """What the runtime hands a connector."""

    name: str
    settings: ConnectorSettings  # an instance of the connector's `settings_class`
    signer: SigningKey
    publisher: ReliablePublisher
    metrics: ConnectorMetrics
    stop: threading.Event
    log: Any
    schemas: SchemaSet = field(default_factory=default_schemas)
    """What alerts are encoded with; `empact_codes` is what their EMPACT priority is checked against."""
    empact_codes: EmpactCodeList = field(default_factory=default_empact_codes)
    statuses: AlertStatuses = field(default_factory=AlertStatuses)
    """The latest status of recent alerts (pending, routed, rejected), kept by `receipts`."""
    receipts: ReceiptFollower | None = None
    """Follows the member's receipts; None when the connector has no federation directory to
    verify them with (`publish.federation`) or `receipts.follow` is off."""
    _last_beat: float = field(default_factory=time.monotonic)

    def on_receipt(self, callback: ReceiptCallback) -> bool:
        """Have `callback` called with the router's receipt of each alert this connector publishes
        (`connectors.sdk.receipts.AlertReceipt`: routed, with its recipients, or rejected, with the
        reason), on the receipts thread. Returns False (and never calls it) if receipts are not followed."""
        if self.receipts is None:
            return False
        self.receipts.on_receipt(callback)
        return True

    def beat(self) -> None:
        """Tell the liveness probe the work loop is still turning."""
        self._last_beat = time.monotonic()

    def seconds_since_beat(self) -> float:
        return time.monotonic() - self._last_beat


class Connector(ABC):
    """Base class of every connector; register it in `connectors.sdk.registry`."""

    name: ClassVar[str]
    settings_class: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    settings: ConnectorSettings
    """An instance of `settings_class` (the runtime builds it); a subclass narrows the annotation."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.log = services.log

    @abstractmethod
    def run(self) -> None:
        """Do the work until `self.services.stop` is set; call `services.beat()` regularly."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Connector-specific readiness on top of "Kafka is reachable"."""
        return True, {}

    def close(self) -> None:
        """Release what `__init__` acquired (sockets, files)."""
        return None


class Runtime:
    """Runs one connector in this process (the CLI) or in a thread (tests)."""

    def __init__(self, connector_class: type[Connector], settings: ConnectorSettings, *,
                 configure_logging: bool = True, signer: SigningKey | None = None,
                 engine: Engine | None = None) -> None:
        """`engine` replaces the Kafka engine `settings.kafka` names (a `MemoryEngine` in tests)."""
        if configure_logging:
            logs.configure(json=settings.log_json, level=settings.log_level)
        name = connector_class.name
        self.stop_event = threading.Event()
        self.metrics = ConnectorMetrics(name)
        log = structlog.get_logger("connector").bind(connector=name, member=settings.member)
        if signer is None:
            signer = load_signing_key(settings.key_file, settings.member)
            # Another member's key would have every alert dead-lettered (key-not-owned-by-producer).
            note = check_key_owner_files(signer, settings.key_file, settings.member, settings.publish.federation,
                                         settings.publish.authority_pub)
            if note is not None:
                log.warning("signing key", problem=note)
        bus = Bus(connector_settings(settings.kafka, settings.publish), engine=engine)
        statuses = AlertStatuses(settings.receipts.cache)
        follower = self._receipt_follower(bus, settings, statuses, log)
        publisher = ReliablePublisher(bus, signer, settings.publish, self.metrics, self.stop_event,
                                      published=follower.published if follower else statuses.published)
        self.services = Services(name, settings, signer, publisher, self.metrics, self.stop_event, log,
                                 schemas=bus.schemas, empact_codes=bus.empact_codes, statuses=statuses,
                                 receipts=follower)
        self.connector = connector_class(self.services)
        try:
            self.health = HealthServer(settings.health.host, settings.health.port, metrics=self.metrics,
                                       live=self._live, ready=self._ready, server_name="bus-connector")
        except OSError:
            self.connector.close()
            raise
        self._running = threading.Event()
        self._finished = threading.Event()
        self.log = log

    def _receipt_follower(self, bus: Bus, settings: ConnectorSettings, statuses: AlertStatuses,
                          log: Any) -> ReceiptFollower | None:
        publish = settings.publish
        if not settings.receipts.follow:
            return None
        if publish.federation is None or publish.authority_pub is None:
            log.info("receipts not followed", why="no publish.federation to verify them with")
            return None
        from bus.adapters.federation_file import WatchedDirectory

        directory = WatchedDirectory(publish.federation, publish.authority_pub)
        return ReceiptFollower(bus, settings.member, directory.current, statuses, self.metrics, self.stop_event,
                               lookback=timedelta(seconds=settings.receipts.lookback_s))

    @property
    def health_address(self) -> tuple[str, int]:
        return self.health.address

    def _live(self) -> tuple[bool, dict[str, Any]]:
        idle = self.services.seconds_since_beat()
        return self._running.is_set() and idle < LIVENESS_TIMEOUT_S, {"last_progress_s": round(idle, 1)}

    def is_running(self) -> bool:
        return self._running.is_set()

    def is_ready(self) -> bool:
        return self._ready()[0]

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        publisher = self.services.publisher
        ok, details = self.connector.readiness()
        details = {"kafka": "ok" if publisher.kafka_ok else (publisher.last_error or "not connected"),
                   **details}
        return self._running.is_set() and publisher.kafka_ok and ok, details

    def _watch_kafka(self) -> None:
        """Keep readiness honest between publishes, and reconnect in the background."""
        publisher = self.services.publisher
        retry = max(0.2, self.services.settings.publish.retry.initial_backoff_s)
        while not self.stop_event.is_set():
            try:
                publisher.check()
            except Exception:  # never let the watcher die silently: readiness would freeze
                self.log.exception("kafka check failed")
            if self.stop_event.wait(KAFKA_CHECK_INTERVAL_S if publisher.kafka_ok else retry):
                return

    def run(self) -> None:
        """Block until stopped; clean up whatever happens."""
        if threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        self.health.start()
        watcher = threading.Thread(target=self._watch_kafka, name="kafka-watch", daemon=True)
        watcher.start()
        follower = self.services.receipts
        if follower is not None:
            follower.start()
        host, port = self.health.address
        self.log.info("connector started", health=f"http://{host}:{port}/healthz")
        self._running.set()
        try:
            self.connector.run()
        finally:
            self._running.clear()
            self.stop_event.set()
            self.connector.close()
            self.services.publisher.close()
            if follower is not None:
                follower.join(10)
            self.health.stop()
            self.log.info("connector stopped")
            self._finished.set()

    def stop(self, wait: float | None = None) -> None:
        self.stop_event.set()
        if wait is not None:
            self._finished.wait(wait)

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.log.info("stopping", signal=signal.Signals(signum).name)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
