"""Prometheus metrics on a registry of our own.

A private registry (not prometheus_client's global one) keeps several
connectors in one process, e.g. in tests, from colliding, and `/metrics` shows
exactly what the connector defines.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ConnectorMetrics:
    """The metrics every connector reports, labelled with the connector name."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, connector: str) -> None:
        self.connector = connector
        self.registry = CollectorRegistry(auto_describe=True)
        self.published = Counter(
            "bus_connector_published", "Alerts acknowledged by Kafka (acks=all).",
            ["connector", "alert_type"], registry=self.registry,
        )
        self.rejected = Counter(
            "bus_connector_rejected", "Alerts or requests refused before publishing.",
            ["connector", "reason"], registry=self.registry,
        )
        self.alerts_rejected = Counter(
            "bus_connector_alerts_rejected",
            "This connector's alerts that the router rejected, by reject reason (from its signed receipts).",
            ["connector", "reason"], registry=self.registry,
        )
        self.latency = Histogram(
            "bus_connector_publish_latency_seconds",
            "Time from handing a batch to the producer to Kafka acknowledging it.",
            ["connector"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.kafka_errors = Counter(
            "bus_connector_kafka_errors", "Failed connection or publish attempts.",
            ["connector", "kind"], registry=self.registry,
        )
        self.ready = Gauge(
            "bus_connector_ready", "1 when the connector can accept work (Kafka reachable).",
            ["connector"], registry=self.registry,
        )
        # Series exist from the start (at 0), so dashboards and rate() work before the first event.
        self.latency.labels(connector)
        self.ready.labels(connector).set(0)
        for kind in ("connect", "publish", "offsets"):
            self.kafka_errors.labels(connector, kind)

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        """A connector-specific counter on the same registry (gets the `connector` label)."""
        return Counter(name, documentation, ["connector", *labels], registry=self.registry)

    def published_inc(self, alert_type: str, count: int = 1) -> None:
        self.published.labels(self.connector, alert_type).inc(count)

    def rejected_inc(self, reason: str, count: int = 1) -> None:
        self.rejected.labels(self.connector, reason).inc(count)

    def alert_rejected_inc(self, reason: str) -> None:
        self.alerts_rejected.labels(self.connector, reason).inc()

    def kafka_error(self, kind: str) -> None:
        self.kafka_errors.labels(self.connector, kind).inc()

    def observe_latency(self, seconds: float) -> None:
        self.latency.labels(self.connector).observe(seconds)

    def set_ready(self, ready: bool) -> None:
        self.ready.labels(self.connector).set(1 if ready else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
