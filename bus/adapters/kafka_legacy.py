"""The single router's kafka-python factories, from before the Kafka port. Being retired.

Only the router files its rewrite replaces (`bus/services/router.py`,
`bus/adapters/transactions.py`, `bus/cli/audit.py`, their tests) and `bench/` import
this; everything else goes through the port (`bus.adapters.kafka`) and the composition
root (`bus.composition`). Delete it with the old router. Its topic shapes (`default_topics`:
`audit` with one partition) are the old router's, not the plan's (`bus.core.topology`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from bus.adapters.kafka import check_settings
from bus.adapters.kafka.kafka_python import client_config
from bus.config import KafkaSettings
from bus.core.models import AlertType
from bus.errors import BusError, KafkaUnavailable

ALERT_TOPICS = tuple(f"alerts.{t.value}" for t in AlertType)
AUDIT_TOPIC = "audit"
DLQ_TOPIC = "dlq.rejected"
REPLAY_TOPIC = "router.seen"




@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 6
    replication: int = 1
    config: tuple[tuple[str, str], ...] = ()


def default_topics(partitions: int = 6, replication: int = 1) -> list[TopicSpec]:
    """Topics the bus needs regardless of partners (feeds come from the policy)."""
    min_isr = str(min(2, replication))
    common = (("min.insync.replicas", min_isr),)
    return [
        *(TopicSpec(t, partitions, replication, common) for t in ALERT_TOPICS),
        # One partition: the audit trail is a single hash chain.
        TopicSpec(AUDIT_TOPIC, 1, replication, (*common, ("retention.ms", "-1"))),
        TopicSpec(DLQ_TOPIC, partitions, replication, (*common, ("retention.ms", "2592000000"))),
        TopicSpec(
            REPLAY_TOPIC, partitions, replication,
            (*common, ("cleanup.policy", "compact,delete"), ("retention.ms", "1209600000")),
        ),
    ]


def feed_topic_spec(topic: str, partitions: int = 6, replication: int = 1) -> TopicSpec:
    return TopicSpec(topic, partitions, replication, (("min.insync.replicas", str(min(2, replication))),))


def _client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python arguments from the settings: the kafka-python engine's own mapping."""
    check_settings(settings)
    return client_config(settings)


def _wrap_unavailable(settings: KafkaSettings, exc: Exception) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot reach Kafka at {settings.describe()}: {exc}. Start a local broker with "
        "`bus broker start` or point --bootstrap / BUS_BOOTSTRAP at a running cluster."
    )


def admin(settings: KafkaSettings, **extra: Any) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**_client_kwargs(settings), request_timeout_ms=15000, **extra)
    except KafkaTimeoutError as exc:
        raise _wrap_unavailable(settings, exc) from exc


def producer(settings: KafkaSettings, **extra: Any) -> KafkaProducer:
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 64 * 1024,
        "max_in_flight_requests_per_connection": 5,
        "retries": 2147483647,
        "delivery_timeout_ms": 60000,
    }
    options.update(extra)
    try:
        return KafkaProducer(**_client_kwargs(settings), **options)
    except KafkaTimeoutError as exc:
        raise _wrap_unavailable(settings, exc) from exc


def consumer(settings: KafkaSettings, *topics: str, **extra: Any) -> KafkaConsumer:
    options: dict[str, Any] = {
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(extra)
    try:
        return KafkaConsumer(*topics, **_client_kwargs(settings), **options)
    except KafkaTimeoutError as exc:
        raise _wrap_unavailable(settings, exc) from exc


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left alone.

    On a secured cluster a principal sees only the topics it may use and usually
    may not create any: those are provisioned (`bus provision`), so a denied
    create is skipped here and any real absence surfaces when the client uses it.
    """
    specs = list(specs)
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                client.create_topics(
                    [NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=dict(spec.config))]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
            except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                continue
        if created:
            _wait_for_topics(client, created)
        return created
    except KafkaError as exc:
        raise BusError(f"could not create topics on {settings.describe()}: {exc}") from exc
    finally:
        client.close()


def _wait_for_topics(client: KafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_topics(names)
        if all(t.get("partitions") and not t.get("error_code") for t in described):
            return
        time.sleep(0.2)


def read_to_end(settings: KafkaSettings, topic: str, last: int | None = None,
                idle_timeout: float = 5.0) -> Iterator[Any]:
    """Every committed record of a topic up to its end as of now (`last`: only the last N
    offsets of each partition). For state recovery, audits and tests; not for live feeds."""
    client = consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic) or [])]
        if not parts:
            return
        client.assign(parts)
        ends = client.end_offsets(parts)
        for tp in parts:
            client.seek(tp, 0 if last is None else max(0, ends[tp] - last))
        remaining = {tp for tp in parts if ends[tp] > 0}
        idle_since = time.monotonic()
        while remaining:
            batch = client.poll(timeout_ms=300)
            for messages in batch.values():
                yield from messages
            if batch:
                idle_since = time.monotonic()
            remaining = {tp for tp in remaining if client.position(tp) < ends[tp]}
            if not batch and time.monotonic() - idle_since > idle_timeout:
                return  # only aborted records or markers left before the end
    finally:
        client.close()
