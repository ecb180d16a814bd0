"""The router's Prometheus metrics, on a registry of its own (several routers in one test process).

Label values only ever come from bounded vocabularies: reject reason codes, the
policy's feed topics, and the partitions assigned to this router. Nothing an input
record says becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bus.adapters.kafka import TopicPartition
from bus.core.bounded import label
from bus.errors import RejectReason

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RESTORE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REASONS = frozenset(r.value for r in RejectReason)


class RouterMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.routed = Counter("bus_router_routed", "Input records routed (alerts and acknowledgements).", registry=r)
        self.rejected = Counter("bus_router_rejected", "Input records dead-lettered, by reason.", ["reason"],
                                registry=r)
        self.delivered = Counter("bus_router_delivered", "Copies written to partner feeds, by feed topic.",
                                 ["feed"], registry=r)
        self.batch_seconds = Histogram("bus_router_batch_seconds", "Time to route and commit one poll batch.",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.batch_records = Counter("bus_router_batch_records", "Input records in committed batches.", registry=r)
        self.lag = Gauge("bus_router_consumer_lag", "Records not yet routed, per assigned input partition.",
                         ["topic", "partition"], registry=r)
        self.recoveries = Counter("bus_router_recoveries",
                                  "Times the router rebuilt its clients and restored its tasks from Kafka.",
                                  registry=r)
        self.bisections = Counter("bus_router_bisections",
                                  "Failed transactions split in two to isolate a record the broker refused.",
                                  registry=r)
        self.checkpoints = Counter("bus_router_checkpoints", "Signed audit checkpoints written.", registry=r)
        self.assigned_partitions = Gauge("bus_router_assigned_partitions", "Input partitions assigned.",
                                         registry=r)
        self.tasks = Gauge("bus_router_tasks", "Routing tasks held (restored and ready).", registry=r)
        self.restore_seconds = Histogram("bus_router_restore_seconds",
                                         "Time to restore the tasks of one assignment from Kafka.",
                                         buckets=RESTORE_BUCKETS, registry=r)
        self.ready = Gauge("bus_router_ready", "1 when connected with every assigned task restored.", registry=r)
        for reason in sorted(REASONS):
            self.rejected.labels(reason)
        self._feeds: frozenset[str] = frozenset()
        self._lagging: set[TopicPartition] = set()

    def set_feeds(self, feeds: Iterable[str]) -> None:
        self._feeds = frozenset(feeds)
        for feed in self._feeds:
            self.delivered.labels(feed)

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected.labels(label(reason, REASONS)).inc(count)

    def deliver(self, feed: str, count: int = 1) -> None:
        self.delivered.labels(label(feed, self._feeds | {"receipts"})).inc(count)

    def set_lag(self, lag: dict[TopicPartition, int]) -> None:
        for tp in self._lagging - set(lag):
            self.lag.remove(tp.topic, str(tp.partition))
        for tp, value in lag.items():
            self.lag.labels(tp.topic, str(tp.partition)).set(value)
        self._lagging = set(lag)

    def render(self) -> bytes:
        return generate_latest(self.registry)
