"""http-ingest against the real broker, driven by real HTTP requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bus.adapters.broker import free_port
from bus.adapters.kafka import text_headers
from bus.adapters.keystore import generate_keypair
from bus.core.keys import SigningKey
from bus.core.sealing import unseal
from connectors.http_ingest.app import COMMITTED
from connectors.http_ingest.auth import hash_token
from connectors.http_ingest.connector import HttpIngestConnector
from connectors.sdk.testing import running, settings_for
from tests.helpers import CODES, EXAMPLES, REPO, SCHEMAS, keyring_for, read_all, wait_for

MEMBER = "NL-CUSTOMS"
RISK_TOKEN = "risk-engine-token-0123456789abcdef0123456789"
SCAN_TOKEN = "scanner-token-0123456789abcdef0123456789abcdef"


def example_json(name: str) -> dict:
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    return data


def in_clear(alert: dict) -> dict:
    """Without H2 (the example's), which would be encrypted by default: see test_confidential_alerts_*."""
    alert["header"]["handling_codes"] = []
    return alert


def config(tmp_path: Path, bootstrap: str, key: Path, **publish) -> dict:
    return {
        "member": MEMBER, "key_file": str(key), "kafka": {"bootstrap": bootstrap},
        "health": {"host": "127.0.0.1", "port": 0},
        "publish": {"create_topics": True, "connect_timeout_s": 2, "ack_timeout_s": 10, "max_block_s": 5,
                    "retry": {"attempts": 2, "initial_backoff_s": 0.1, "max_backoff_s": 0.2}, **publish},
        "ingest": {"host": "127.0.0.1", "port": 0, "max_batch": 10, "systems": [
            {"name": "risk-engine", "token_sha256": hash_token(RISK_TOKEN),
             "alert_types": ["suspicious-container", "operation-notice"]},
            {"name": "scanner", "token_env": "TEST_SCANNER_TOKEN", "alert_types": ["suspicious-container"]},
        ]},
    }


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[Path, SigningKey]:
    path, _, signer = generate_keypair(MEMBER, tmp_path_factory.mktemp("keys"))
    return path, signer


@pytest.fixture
def ingest(kafka, key, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SCANNER_TOKEN", SCAN_TOKEN)
    settings = settings_for(HttpIngestConnector, tmp_path / "ingest.yaml", config(tmp_path, kafka.bootstrap, key[0]))
    with running(HttpIngestConnector, settings) as runtime:
        host, port = runtime.connector.address
        health = "http://{}:{}".format(*runtime.health_address)
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            yield client, health


def post(client: httpx.Client, alert_type: str, body, token: str | None = RISK_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/v1/alerts/{alert_type}", json=body, headers=headers)


def on_topic(kafka, topic: str, signer: SigningKey) -> dict[str, object]:
    """message id -> verified alert, for every record of `topic`."""
    found = {}
    for record in read_all(kafka, topic):
        headers = dict(record.headers)
        if (headers.get(b"ce_source") or b"").decode().endswith(MEMBER):
            try:
                verified = unseal(record.key, record.value, text_headers(record.headers), keyring_for(signer),
                                  SCHEMAS, CODES)
            except Exception:
                continue
            found[str(verified.message_id)] = (record, verified)
    return found


def test_single_and_batch_are_acknowledged_then_on_kafka(kafka, key, ingest):
    client, _ = ingest
    single = post(client, "suspicious-container", example_json("suspicious-container"))
    assert single.status_code == 202, single.text
    receipt = single.json()
    assert receipt["topic"] == "alerts.suspicious-container" and receipt["offset"] >= 0
    batch = post(client, "operation-notice", [in_clear(example_json("operation-notice")) for _ in range(2)])
    assert batch.status_code == 202, batch.text
    receipts = batch.json()["receipts"]
    assert len(receipts) == 2 and len({r["message_id"] for r in receipts}) == 2

    published = on_topic(kafka, "alerts.suspicious-container", key[1])
    record, verified = published[receipt["message_id"]]
    assert (record.partition, record.offset) == (receipt["partition"], receipt["offset"])
    assert verified.producer == MEMBER and verified.alert.container_number == "CSQU3054383"
    notices = on_topic(kafka, "alerts.operation-notice", key[1])
    assert all(r["message_id"] in notices for r in receipts)


def test_resending_the_same_message_id_returns_the_first_receipt(kafka, key, ingest):
    client, _ = ingest
    alert = example_json("suspicious-container")
    alert["header"]["message_id"] = "019a0000-0000-7000-8000-00000000abcd"
    first = post(client, "suspicious-container", alert)
    again = post(client, "suspicious-container", alert)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    copies = [r for r in read_all(kafka, "alerts.suspicious-container")
              if dict(r.headers).get(b"ce_id") == alert["header"]["message_id"].encode()]
    assert len(copies) == 1


def test_invalid_alerts_get_422_with_every_field_error_and_nothing_is_published(kafka, ingest):
    client, _ = ingest
    good = example_json("suspicious-container")
    bad = example_json("suspicious-container")
    bad["container_number"] = "CSQU3054384"
    bad["header"]["tlp"] = "PURPLE"
    del bad["header"]["summary"]
    before = len(read_all(kafka, "alerts.suspicious-container"))
    response = post(client, "suspicious-container", [good, bad])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation-failed"
    locs = {(e["item"], e["loc"]) for e in body["errors"]}
    assert {(1, "container_number"), (1, "header.tlp"), (1, "header.summary")} <= locs
    assert all(e["item"] == 1 for e in body["errors"])
    assert len(read_all(kafka, "alerts.suspicious-container")) == before

    wrong_type = post(client, "operation-notice", good)
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["loc"] == "header.alert_type"
    assert post(client, "suspicious-container", []).status_code == 422
    assert client.post("/v1/alerts/suspicious-container", content=b"{not json",
                       headers={"Authorization": f"Bearer {RISK_TOKEN}",
                                "Content-Type": "application/json"}).status_code == 400
    assert client.post("/v1/alerts/suspicious-container", content=b"{}",
                       headers={"Authorization": f"Bearer {RISK_TOKEN}",
                                "Content-Type": "text/plain"}).status_code == 415
    too_many = post(client, "suspicious-container", [good] * 11)
    assert too_many.status_code == 413 and too_many.json()["error"] == "batch-too-large"


def test_tokens_and_alert_types_are_enforced(ingest):
    client, _ = ingest
    alert = example_json("suspicious-container")
    missing = post(client, "suspicious-container", alert, token=None)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(client, "suspicious-container", alert, token="wrong-token").status_code == 401
    forbidden = post(client, "operation-notice", example_json("operation-notice"), token=SCAN_TOKEN)
    assert forbidden.status_code == 403 and "scanner" in forbidden.json()["detail"]
    assert post(client, "no-such-type", alert).status_code == 404
    assert post(client, "suspicious-container", alert, token=SCAN_TOKEN).status_code == 202


def test_openapi_health_and_metrics_answer(ingest):
    client, health = ingest
    assert client.get("/openapi.json").json() == json.loads(COMMITTED.read_text())
    assert httpx.get(f"{health}/healthz").status_code == 200
    ready = httpx.get(f"{health}/readyz")
    assert ready.status_code == 200 and ready.json()["kafka"] == "ok"
    post(client, "suspicious-container", example_json("suspicious-container"))
    post(client, "suspicious-container", example_json("suspicious-container"), token="nope")
    metrics = httpx.get(f"{health}/metrics").text
    assert 'bus_connector_published_total{alert_type="suspicious-container",connector="http-ingest"}' in metrics
    assert 'bus_connector_rejected_total{connector="http-ingest",reason="unauthorized"} 1.0' in metrics
    assert 'bus_connector_http_requests_total{connector="http-ingest",status="202",system="risk-engine"}' in metrics
    assert 'bus_connector_publish_latency_seconds_count{connector="http-ingest"}' in metrics
    assert 'bus_connector_ready{connector="http-ingest"} 1.0' in metrics


def test_broker_down_gives_503_quickly_and_not_ready(key, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SCANNER_TOKEN", SCAN_TOKEN)
    closed = f"127.0.0.1:{free_port()}"  # reserved and released: nobody listens there
    settings = settings_for(HttpIngestConnector, tmp_path / "down.yaml", config(tmp_path, closed, key[0]))
    with running(HttpIngestConnector, settings, ready=False) as runtime:
        host, port = runtime.connector.address
        health = "http://{}:{}".format(*runtime.health_address)
        alert = example_json("suspicious-container")
        started = time.monotonic()
        response = httpx.post(f"http://{host}:{port}/v1/alerts/suspicious-container", json=alert,
                              headers={"Authorization": f"Bearer {RISK_TOKEN}"}, timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert elapsed < 10
        body = response.json()
        assert body["error"] == "kafka-unavailable" and len(body["message_ids"]) == 1
        assert response.headers["Retry-After"] == "5"
        ready = httpx.get(f"{health}/readyz")
        assert ready.status_code == 503 and "cannot reach Kafka" in ready.json()["kafka"]
        assert httpx.get(f"{health}/healthz").status_code == 200
        metrics = httpx.get(f"{health}/metrics").text
        assert 'bus_connector_kafka_errors_total{connector="http-ingest",kind="connect"}' in metrics
        assert 'bus_connector_rejected_total{connector="http-ingest",reason="kafka-unavailable"} 1.0' in metrics


def test_confidential_alerts_are_encrypted_to_their_recipients_or_refused(kafka, key, tmp_path, monkeypatch):
    """publish.encrypt defaults to auto: an H2 alert without publish.federation is refused by name;
    with it, the alert is on Kafka encrypted and only its release_to can read it."""
    from bus.adapters.federation_file import make_demo
    from bus.core.confidential import Decryptor, unseal_and_decrypt

    monkeypatch.setenv("TEST_SCANNER_TOKEN", SCAN_TOKEN)
    fed = make_demo(tmp_path / "fed")
    notice = example_json("operation-notice")  # H2, release_to DE-CUSTOMS, PORT-HAMBURG, EUROPOL
    settings = settings_for(HttpIngestConnector, tmp_path / "plain.yaml", config(tmp_path, kafka.bootstrap, key[0]))
    with running(HttpIngestConnector, settings) as runtime:
        host, port = runtime.connector.address
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            refused = post(client, "operation-notice", notice)
    assert refused.status_code == 422, refused.text
    assert "handling code H2" in refused.text and "federation directory" in refused.text

    encrypting = config(tmp_path, kafka.bootstrap, key[0], federation=str(fed.directory_path),
                        authority_pub=str(fed.authority_pub))
    settings = settings_for(HttpIngestConnector, tmp_path / "encrypting.yaml", encrypting)
    with running(HttpIngestConnector, settings) as runtime:
        host, port = runtime.connector.address
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            accepted = post(client, "operation-notice", notice)
    assert accepted.status_code == 202, accepted.text
    mid = accepted.json()["message_id"]
    [record] = [r for r in read_all(kafka, "alerts.operation-notice") if r.key == mid.encode()]
    assert notice["codename"].encode() not in record.value and notice["contact"].encode() not in record.value
    reader = Decryptor.of([fed.decryption_keys["PORT-HAMBURG"]])
    alert = unseal_and_decrypt(record.key, record.value, text_headers(record.headers), keyring_for(key[1]), reader,
                               SCHEMAS, CODES).alert
    assert alert.codename == notice["codename"]  # type: ignore[attr-defined]


def test_the_cli_connector_serves_until_sigterm_then_exits_cleanly(kafka, key, tmp_path):
    """`bus connector run http-ingest` as operators run it: uvicorn inside the runtime, stopped by SIGTERM."""
    data = config(tmp_path, kafka.bootstrap, key[0])
    api, health = free_port(), free_port()
    data["ingest"]["port"], data["health"]["port"] = api, health
    settings_for(HttpIngestConnector, tmp_path / "cli.yaml", data)  # the file the CLI reads, validated
    log = tmp_path / "connector.log"
    env = {**os.environ, "TEST_SCANNER_TOKEN": SCAN_TOKEN, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bus", "connector", "run", "http-ingest",
                                "--config", str(tmp_path / "cli.yaml")], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=log.open("ab"))
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{health}/readyz").status_code == 200
            except httpx.TransportError:
                return process.poll() is not None  # died: the assertion below says why

        wait_for(ready, timeout=60, what="the connector to be ready")
        with httpx.Client(base_url=f"http://127.0.0.1:{api}", timeout=30) as client:
            assert post(client, "suspicious-container", example_json("suspicious-container")).status_code == 202
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
    assert "stopping" in events and events[-1] == "connector stopped"
