"""Connector SDK: config, stable ids, backoff, metrics, health endpoints, retries, registry."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka.errors import KafkaTimeoutError

from bus.adapters.health import HealthServer
from bus.adapters.keystore import generate_keypair
from bus.core.keys import SigningKey
from bus.errors import AlertValidationError, BusError
from bus.services.publisher import PublishError, Receipt
from connectors.sdk.config import ConfigError, ConnectorSettings, PublishSettings, RetrySettings, load_config
from connectors.sdk.inbox.checkpoint import Checkpoint, CheckpointStore
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import KafkaDown, ReliablePublisher
from connectors.sdk.registry import available, load_connector
from connectors.sdk.retry import Backoff
from connectors.sdk.stable_ids import stable_uuid7
from connectors.sdk.testing import write_config
from tests.helpers import example

# --- stable ids ----------------------------------------------------------------------------


def test_stable_uuid7_is_a_deterministic_uuidv7_with_the_given_time():
    when = datetime(2026, 11, 20, 8, 5, 0, 123000, tzinfo=UTC)
    first, again = stable_uuid7("abc:row:1", when), stable_uuid7("abc:row:1", when)
    assert first == again
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert int.from_bytes(first.bytes[:6], "big") == int(when.timestamp() * 1000)
    assert stable_uuid7("abc:row:2", when) != first
    assert stable_uuid7("abc:row:1", datetime(2026, 11, 21, tzinfo=UTC)) != first


# --- configuration --------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key, _, _ = generate_keypair("NL-CUSTOMS", tmp_path / "keys")
    return key


def test_config_from_yaml_with_environment_overrides(tmp_path, key_file, monkeypatch):
    path = write_config(tmp_path / "c.yaml", {
        "member": "NL-CUSTOMS", "key_file": str(key_file),
        "kafka": {"bootstrap": "kafka:9092", "client_id": "from-file"},
        "health": {"port": 9000}, "publish": {"retry": {"attempts": 2}},
    })
    monkeypatch.setenv("BUS_CONNECTOR_HEALTH__PORT", "9500")
    monkeypatch.setenv("BUS_BOOTSTRAP", "broker:19092")
    settings = load_config(ConnectorSettings, path)
    assert settings.health.port == 9500  # env beats the file
    assert settings.publish.retry.attempts == 2  # untouched nested values survive
    assert settings.kafka.bootstrap == "broker:19092" and settings.kafka.client_id == "from-file"


def test_config_errors_name_every_field(tmp_path):
    path = write_config(tmp_path / "c.yaml", {
        "member": "nl customs", "helth": {"port": 1}, "health": {"port": 70000},
    })
    with pytest.raises(ConfigError) as caught:
        load_config(ConnectorSettings, path)
    text = str(caught.value)
    assert "member:" in text and "helth: unknown setting" in text and "health.port:" in text
    assert "key_file: Field required (set it in the file or in BUS_CONNECTOR_KEY_FILE)" in text


def test_config_sasl_without_password_is_a_config_error(tmp_path, key_file, monkeypatch):
    monkeypatch.delenv("BUS_SASL_PASSWORD", raising=False)
    path = write_config(tmp_path / "c.yaml", {
        "member": "NL-CUSTOMS", "key_file": str(key_file),
        "kafka": {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "nl-customs"},
    })
    with pytest.raises(ConfigError, match="SASL username and password"):
        load_config(ConnectorSettings, path)


def test_config_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(ConnectorSettings, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("member: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(ConnectorSettings, bad)


# --- backoff, metrics, health ----------------------------------------------------------------


def test_backoff_grows_to_the_cap_with_bounded_jitter():
    delays = Backoff(initial=0.5, maximum=4, multiplier=2, jitter=0.2).delays()
    values = [next(delays) for _ in range(6)]
    for value, base in zip(values, [0.5, 1, 2, 4, 4, 4], strict=True):
        assert base * 0.8 <= value <= min(4, base * 1.2)


def test_health_server_answers_probes_and_metrics():
    metrics = ConnectorMetrics("test")
    metrics.published_inc("suspicious-container", 3)
    metrics.rejected_inc("invalid-alert")
    ready = {"ok": False}
    server = HealthServer("127.0.0.1", 0, metrics=metrics, live=lambda: (True, {}),
                          ready=lambda: (ready["ok"], {"kafka": "down"}))
    server.start()
    try:
        base = "http://{}:{}".format(*server.address)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        not_ready = httpx.get(f"{base}/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["kafka"] == "down"
        ready["ok"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        text = httpx.get(f"{base}/metrics").text
        assert 'bus_connector_published_total{alert_type="suspicious-container",connector="test"} 3.0' in text
        assert 'bus_connector_rejected_total{connector="test",reason="invalid-alert"} 1.0' in text
        assert "bus_connector_publish_latency_seconds_bucket" in text
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.stop()


# --- retries -----------------------------------------------------------------------------------


class FlakyPublisher:
    """Stands in for bus.services.publisher.Publisher: fails `failures` times, then acknowledges."""

    created = 0

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error

    def __call__(self, *args, **kwargs) -> FlakyPublisher:
        FlakyPublisher.created += 1
        return self

    def publish_many(self, alerts, timeout):
        if self.failures:
            self.failures -= 1
            raise self.error
        return [Receipt(str(a.header.message_id), a.alert_type.value, "alerts.x", 0, i)
                for i, a in enumerate(alerts)]

    def close(self, timeout=None):
        pass


def reliable(factory, attempts=3) -> tuple[ReliablePublisher, ConnectorMetrics]:
    from bus.config import KafkaSettings

    options = PublishSettings(retry=RetrySettings(attempts=attempts, initial_backoff_s=0.01, max_backoff_s=0.02))
    metrics = ConnectorMetrics("test")
    publisher = ReliablePublisher(KafkaSettings(bootstrap="127.0.0.1:1"), SigningKey.generate("NL-CUSTOMS"),
                                  options, metrics, threading.Event(), factory=factory)
    return publisher, metrics


def test_publish_retries_with_a_fresh_producer_then_succeeds(monkeypatch):
    monkeypatch.setattr("connectors.sdk.publishing.probe_bootstrap", lambda *a: None)
    FlakyPublisher.created = 0
    publisher, metrics = reliable(FlakyPublisher(2, PublishError("not acknowledged")))
    receipts = publisher.publish([example("suspicious-container")])
    assert len(receipts) == 1 and publisher.kafka_ok
    assert FlakyPublisher.created == 3  # each failure discards the producer
    assert metrics.kafka_errors.labels("test", "publish")._value.get() == 2


def test_publish_gives_up_with_kafka_down(monkeypatch):
    monkeypatch.setattr("connectors.sdk.publishing.probe_bootstrap", lambda *a: None)
    publisher, _ = reliable(FlakyPublisher(10, KafkaTimeoutError("flush timed out")), attempts=2)
    with pytest.raises(KafkaDown, match="after 2 attempt"):
        publisher.publish([example("suspicious-container")])
    assert not publisher.kafka_ok


def test_unreachable_bootstrap_fails_fast_without_a_producer():
    FlakyPublisher.created = 0
    publisher, _ = reliable(FlakyPublisher(0, PublishError("x")), attempts=2)
    with pytest.raises(KafkaDown, match="cannot reach Kafka"):
        publisher.publish([example("suspicious-container")])
    assert FlakyPublisher.created == 0


def test_invalid_alerts_are_not_retried(monkeypatch):
    monkeypatch.setattr("connectors.sdk.publishing.probe_bootstrap", lambda *a: None)
    FlakyPublisher.created = 0
    publisher, _ = reliable(FlakyPublisher(5, AlertValidationError([("alert", "too big")])))
    with pytest.raises(AlertValidationError):
        publisher.publish([example("suspicious-container")])
    assert FlakyPublisher.created == 1
    with pytest.raises(BusError, match="signs as NL-CUSTOMS"):
        publisher.publish([example("suspicious-container", producer="BE-CUSTOMS")])


def test_stop_interrupts_the_backoff(monkeypatch):
    monkeypatch.setattr("connectors.sdk.publishing.probe_bootstrap", lambda *a: None)
    publisher, _ = reliable(FlakyPublisher(10, PublishError("x")), attempts=5)
    publisher.stop.set()
    with pytest.raises(KafkaDown, match="shutting down"):
        publisher.publish([example("suspicious-container")])


# --- checkpoints, registry ----------------------------------------------------------------------


def test_checkpoint_round_trip_and_scan_offsets(tmp_path):
    store = CheckpointStore(tmp_path)
    checkpoint = Checkpoint("a.jsonl", "ff" * 32, datetime.now(UTC).isoformat(), total=5,
                            scan_from={"alerts.x": {0: 10, 1: 4}})
    checkpoint.advance(2, [("alerts.x", 0, 12), ("alerts.x", 2, 0)])
    store.save(checkpoint)
    loaded = store.load("a.jsonl")
    assert loaded is not None and loaded.acked == 2
    assert loaded.scan_from == {"alerts.x": {0: 13, 1: 4, 2: 1}}
    assert store.names() == ["a.jsonl"]
    store.delete("a.jsonl")
    assert store.load("a.jsonl") is None


def test_registry_knows_the_builtin_connectors():
    assert {"http-ingest", "directory-drop", "edifact"} <= set(available())
    assert load_connector("edifact").name == "edifact"
    with pytest.raises(BusError, match="unknown connector 'nope'; available: directory-drop, edifact"):
        load_connector("nope")
