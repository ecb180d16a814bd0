"""http-ingest in-process on the in-memory Kafka engine, for tests of its HTTP contract.

The application, `IngestApi`, the `ReliablePublisher` (retries, metrics) and the publisher it
builds are the real ones, wired by the composition root onto a `MemoryEngine`
(`Bus(settings, engine=engine)`), which a test can look at or take down
(`engine.faults.go_down()`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from fastapi import FastAPI

from bus.adapters.kafka.memory import MemoryEngine
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from bus.core.models import AlertType, BaseAlert
from bus.core.topology import alert_topic, receipts_topic
from bus.core.trust import FederationDirectory
from bus.services.publisher import Publisher, Receipt
from connectors.http_ingest.api import IngestApi
from connectors.http_ingest.app import create_app
from connectors.http_ingest.auth import TokenTable, hash_token
from connectors.http_ingest.config import IngestSettings, SystemToken
from connectors.http_ingest.server import IngestServer
from connectors.sdk.config import PublishSettings, RetrySettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher, encryption_policy
from connectors.sdk.receipts import AlertStatuses, ReceiptFollower
from connectors.sdk.runtime import Services
from tests.helpers import EXAMPLES

MEMBER = "NL-CUSTOMS"
RISK_TOKEN = "risk-engine-token-0123456789abcdef0123456789"
SCAN_TOKEN = "scanner-token-0123456789abcdef0123456789abcdef"
NOTICE_TOKEN = "notices-token-0123456789abcdef0123456789abcdef"
MAX_BATCH = 10
MAX_BODY_BYTES = 64 * 1024


class ObservedPublisher:
    """The real publisher, telling the test when alerts were handed to it (`sending`)."""

    def __init__(self, publisher: Publisher, sending: threading.Event) -> None:
        self.publisher, self.sending = publisher, sending

    def publish_many(self, alerts: Sequence[BaseAlert], timeout: float = 60.0) -> list[Receipt]:
        self.sending.set()
        return self.publisher.publish_many(alerts, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.publisher.close(timeout)


@dataclass
class MemoryIngest:
    app: FastAPI
    engine: MemoryEngine
    metrics: ConnectorMetrics
    stop: threading.Event
    publisher: ReliablePublisher
    sending: threading.Event
    """Set once records were handed to the engine's producer."""
    services: Services | None = None


def ingest_settings() -> IngestSettings:
    return IngestSettings(host="127.0.0.1", port=0, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY_BYTES, systems=[
        SystemToken(name="risk-engine", token_sha256=hash_token(RISK_TOKEN), alert_types=["*"]),
        SystemToken(name="scanner", token_sha256=hash_token(SCAN_TOKEN), alert_types=["suspicious-container"]),
        SystemToken(name="notices", token_sha256=hash_token(NOTICE_TOKEN), alert_types=["operation-notice"]),
    ])


@contextmanager
def memory_ingest(*, ack_timeout_s: float = 5.0, factory: Any = None,
                  receipts_from: FederationDirectory | None = None) -> Iterator[MemoryIngest]:
    """The ingest application publishing to a fresh MemoryEngine holding the alert topics.

    `receipts_from`: follow `receipts.<member>` (created here), verified with this directory's
    router keys, as the runtime does for a connector with a federation directory."""
    engine = MemoryEngine()
    for alert_type in AlertType:
        engine.create_topic(alert_topic(alert_type.value), partitions=3)
    signer = SigningKey.generate(MEMBER)
    metrics = ConnectorMetrics("http-ingest")
    stop, sending = threading.Event(), threading.Event()
    options = PublishSettings(connect_timeout_s=1, ack_timeout_s=ack_timeout_s, max_block_s=1,
                              retry=RetrySettings(attempts=1, initial_backoff_s=0.05, max_backoff_s=0.05))
    bus = Bus(KafkaSettings(), engine=engine)

    def observed() -> Any:
        publisher = bus.publisher(signer, encryption=encryption_policy(options), create_topics=False)
        return ObservedPublisher(publisher, sending)

    statuses = AlertStatuses(size=100)
    follower = None
    if receipts_from is not None:
        engine.create_topic(receipts_topic(MEMBER))
        directory = receipts_from
        follower = ReceiptFollower(bus, MEMBER, lambda: directory, statuses, metrics, stop, poll=0.05)
    publisher = ReliablePublisher(bus, signer, options, metrics, stop, factory=factory or observed,
                                  published=follower.published if follower else statuses.published)
    services = Services("http-ingest", None, signer, publisher, metrics, stop, structlog.get_logger("connector"),
                        statuses=statuses, receipts=follower)
    settings = ingest_settings()
    app = create_app(IngestApi(settings, TokenTable(settings.systems), services))
    if follower is not None:
        follower.start()
    try:
        yield MemoryIngest(app, engine, metrics, stop, publisher, sending, services)
    finally:
        stop.set()
        if follower is not None:
            follower.join(10)
        publisher.close()


@contextmanager
def served(app: FastAPI, *, grace_s: float = 10.0) -> Iterator[tuple[IngestServer, httpx.Client]]:
    """`app` on uvicorn, on a free port of 127.0.0.1, and a client for it."""
    server = IngestServer(app, "127.0.0.1", 0, grace_s=grace_s)
    server.start()
    try:
        with httpx.Client(base_url="http://{}:{}".format(*server.address), timeout=30) as client:
            yield server, client
    finally:
        server.stop()


def example_alert(alert_type: str) -> dict[str, Any]:
    """The shipped example of `alert_type` without the fields the connector fills in, and made one that is
    published in clear (TLP:AMBER, no handling codes): encrypting needs a federation directory."""
    data = json.loads((EXAMPLES / f"{alert_type}.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update(tlp="AMBER", handling_codes=[])
    data["header"].pop("h3_conditions", None)
    return data
