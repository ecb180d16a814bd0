"""Connector SDK: config, stable ids, backoff, metrics, health endpoints, retries, registry."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from bus.adapters.health import HealthServer
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.keystore import generate_keypair
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.confidential import EncryptionPolicy, EncryptMode
from bus.core.keys import SigningKey
from bus.errors import (
    AlertValidationError,
    BusError,
    InvalidInput,
    KafkaError,
    KafkaUnavailable,
    NotAuthorized,
    PublishError,
)
from bus.services.publisher import Publisher
from connectors.sdk import ConfigError  # the SDK's public name for bus.errors.ConnectorConfigError
from connectors.sdk.config import ConnectorSettings, PublishSettings, RetrySettings, load_config
from connectors.sdk.inbox.checkpoint import Checkpoint, CheckpointStore
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher
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


# --- retries (on the in-memory Kafka engine) ---------------------------------------------------


def memory_bus(engine: MemoryEngine | None = None) -> Bus:
    bus = Bus(engine=engine or MemoryEngine(max_wait=2.0))
    bus.ensure_alert_topics()
    return bus


def reliable(bus: Bus, attempts: int = 3,
             ack_timeout_s: float = 0.3) -> tuple[ReliablePublisher, ConnectorMetrics, list[Publisher]]:
    """A reliable publisher on `bus`, and the list of the publishers it built."""
    options = PublishSettings(ack_timeout_s=ack_timeout_s,
                              retry=RetrySettings(attempts=attempts, initial_backoff_s=0.01, max_backoff_s=0.02))
    metrics = ConnectorMetrics("test")
    built: list[Publisher] = []
    signer = SigningKey.generate("NL-CUSTOMS")

    def factory() -> Publisher:
        built.append(bus.publisher(signer))
        return built[-1]

    publisher = ReliablePublisher(bus, signer, options, metrics, threading.Event(), factory=factory)
    return publisher, metrics, built


def kafka_errors(metrics: ConnectorMetrics, kind: str) -> float:
    return metrics.registry.get_sample_value("bus_connector_kafka_errors_total",
                                             {"connector": "test", "kind": kind}) or 0.0


def test_publish_retries_with_a_fresh_producer_then_succeeds():
    bus = memory_bus()
    bus.engine.faults.fail_sends("alerts.suspicious-container", times=2)  # type: ignore[attr-defined]
    publisher, metrics, built = reliable(bus)
    alert = example("suspicious-container")
    [receipt] = publisher.publish([alert])
    assert publisher.kafka_ok and receipt.topic == "alerts.suspicious-container"
    assert len(built) == 3  # each failure discards the producer
    assert kafka_errors(metrics, "publish") == 2
    stored = bus.engine.records("alerts.suspicious-container")  # type: ignore[attr-defined]
    assert [r.header_values(b"ce_id") for r in stored] == [[str(alert.header.message_id).encode()]]


def test_publish_gives_up_when_kafka_stays_away():
    bus = memory_bus()
    publisher, _, built = reliable(bus, attempts=2)
    with bus.engine.faults.outage(), pytest.raises(PublishError, match="after 2 attempt") as caught:  # type: ignore[attr-defined]
        publisher.publish([example("suspicious-container")])
    assert isinstance(caught.value.__cause__, PublishError | KafkaError)
    assert not publisher.kafka_ok and len(built) == 2


def test_unreachable_bootstrap_fails_fast_without_a_producer():
    built: list[object] = []
    options = PublishSettings(connect_timeout_s=0.5, retry=RetrySettings(attempts=2, initial_backoff_s=0.01))
    publisher = ReliablePublisher(Bus(KafkaSettings(bootstrap="127.0.0.1:1")), SigningKey.generate("NL-CUSTOMS"),
                                  options, ConnectorMetrics("test"), threading.Event(),
                                  factory=lambda: built.append(1))  # type: ignore[arg-type,func-returns-value]
    with pytest.raises(PublishError, match="cannot reach Kafka") as caught:
        publisher.publish([example("suspicious-container")])
    assert isinstance(caught.value.__cause__, KafkaUnavailable)
    assert built == [] and publisher.last_error is not None and "cannot reach Kafka" in publisher.last_error


def test_a_refusal_that_waiting_cannot_cure_is_not_retried():
    engine = MemoryEngine()
    memory_bus(engine)
    engine.admin().upsert_scram_user("nl-customs", "pw")  # a user without any grant
    publisher, _, built = reliable(Bus(engine=engine.as_user("nl-customs", "pw")), attempts=5)
    with capture_logs() as logs, pytest.raises(PublishError, match="refused") as caught:
        publisher.publish([example("suspicious-container")])
    assert isinstance(caught.value.__cause__, NotAuthorized)
    assert len(built) == 1
    # the operator's log says "refused", not "unavailable": waiting for Kafka will not help
    assert [(e["event"], e["error_type"]) for e in logs if e["log_level"] == "warning"] == [
        ("kafka refused", "NotAuthorized")]


def test_a_failure_a_retry_may_cure_is_logged_as_kafka_unavailable():
    bus = memory_bus()
    bus.engine.faults.fail_sends("alerts.suspicious-container", times=1)  # type: ignore[attr-defined]
    publisher, _, _ = reliable(bus)
    with capture_logs() as logs:
        publisher.publish([example("suspicious-container")])
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["kafka unavailable"]


def test_invalid_alerts_are_not_retried():
    bus = memory_bus()
    built: list[Publisher] = []
    signer = SigningKey.generate("NL-CUSTOMS")

    def encrypting_without_keys() -> Publisher:  # sealing fails: no directory holds recipients' keys
        built.append(bus.publisher(signer, encryption=EncryptionPolicy(EncryptMode.ALWAYS)))
        return built[-1]

    publisher = ReliablePublisher(bus, signer, PublishSettings(), ConnectorMetrics("test"), threading.Event(),
                                  factory=encrypting_without_keys)
    with pytest.raises(AlertValidationError):
        publisher.publish([example("suspicious-container")])
    assert len(built) == 1 and bus.engine.records("alerts.suspicious-container") == []  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="signs as NL-CUSTOMS"):
        publisher.publish([example("suspicious-container", producer="BE-CUSTOMS")])


def test_stop_interrupts_the_backoff():
    bus = memory_bus()
    publisher, _, _ = reliable(bus, attempts=5)
    publisher.stop.set()
    with bus.engine.faults.outage(), pytest.raises(PublishError, match="shutting down"):  # type: ignore[attr-defined]
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
