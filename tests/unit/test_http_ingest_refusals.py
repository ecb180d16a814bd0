"""http-ingest over real HTTP, for requests it refuses (no Kafka): logged, counted, explained.

Each refused request gives exactly one log line naming the system, the status and the
reason, bounded whatever the client sent and never holding its token; a 403 is counted
under the system its token identified; 422 messages name fields, never CLI flags.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from connectors.http_ingest.api import IngestApi, bounded
from connectors.http_ingest.app import create_app
from connectors.http_ingest.auth import TokenTable, hash_token
from connectors.http_ingest.config import IngestSettings, SystemToken
from connectors.http_ingest.server import IngestServer
from connectors.sdk.config import PublishSettings, RetrySettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher
from connectors.sdk.runtime import Services
from tests.helpers import EXAMPLES

MEMBER = "NL-CUSTOMS"
RISK_TOKEN = "risk-engine-token-0123456789abcdef0123456789"
SCAN_TOKEN = "scanner-token-0123456789abcdef0123456789abcdef"
WRONG_TOKEN = "not-a-known-token-0123456789abcdef0123456789"


class Ingest:
    def __init__(self, client: httpx.Client, metrics: ConnectorMetrics, logs: list[dict[str, Any]]) -> None:
        self.client, self.metrics, self.logs = client, metrics, logs

    def post(self, alert_type: str, body: Any, token: str | None = RISK_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(f"/v1/alerts/{alert_type}", json=body, headers=headers)

    def refusals(self) -> list[dict[str, Any]]:
        return [e for e in self.logs if e["event"] in ("request rejected", "request failed")]

    def requests(self, system: str, status: int) -> float:
        value = self.metrics.registry.get_sample_value(
            "bus_connector_http_requests_total",
            {"connector": "http-ingest", "system": system, "status": str(status)})
        return value or 0.0


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    signer = SigningKey.generate(MEMBER)
    metrics = ConnectorMetrics("http-ingest")
    stop = threading.Event()
    quick = PublishSettings(connect_timeout_s=0.3, ack_timeout_s=1, max_block_s=1,
                            retry=RetrySettings(attempts=1, initial_backoff_s=0.05, max_backoff_s=0.05))
    publisher = ReliablePublisher(Bus(KafkaSettings(bootstrap="127.0.0.1:1")), signer, quick, metrics, stop)
    settings = IngestSettings(host="127.0.0.1", port=0, max_batch=10, systems=[
        SystemToken(name="risk-engine", token_sha256=hash_token(RISK_TOKEN),
                    alert_types=["suspicious-container", "operation-notice"]),
        SystemToken(name="scanner", token_sha256=hash_token(SCAN_TOKEN), alert_types=["suspicious-container"]),
    ])
    with capture_logs() as logs:
        services = Services("http-ingest", None, signer, publisher, metrics, stop, structlog.get_logger("connector"))
        app = create_app(IngestApi(settings, TokenTable(settings.systems), services))
        server = IngestServer(app, "127.0.0.1", 0, grace_s=5)
        server.start()
        try:
            with httpx.Client(base_url="http://{}:{}".format(*server.address), timeout=30) as client:
                yield Ingest(client, metrics, logs)
        finally:
            server.stop()
            publisher.close()


def alert(name: str = "suspicious-container", **header: Any) -> dict[str, Any]:
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update(header)
    return data


def test_a_forbidden_type_is_logged_and_counted_under_the_system_that_sent_it(ingest):
    response = ingest.post("operation-notice", alert("operation-notice"), token=SCAN_TOKEN)
    assert response.status_code == 403
    [line] = ingest.refusals()
    assert (line["system"], line["status"], line["reason"]) == ("scanner", 403, "forbidden")
    assert line["detail"] == "system scanner may not post operation-notice alerts"
    assert line["log_level"] == "warning"
    assert ingest.requests("scanner", 403) == 1 and ingest.requests("-", 403) == 0


def test_an_unknown_token_is_logged_without_it(ingest):
    assert ingest.post("suspicious-container", alert(), token=WRONG_TOKEN).status_code == 401
    [line] = ingest.refusals()
    assert (line["system"], line["status"], line["reason"]) == ("-", 401, "unauthorized")
    assert WRONG_TOKEN not in repr(ingest.logs) and WRONG_TOKEN[:12] not in repr(ingest.logs)
    assert ingest.requests("-", 401) == 1


def test_invalid_alerts_are_explained_by_field_and_logged_once(ingest):
    other_producer = alert("operation-notice", producer="BE-CUSTOMS")
    response = ingest.post("operation-notice", [other_producer, alert(producer=MEMBER)])
    assert response.status_code == 422
    messages = {(e["item"], e["loc"]): e["msg"] for e in response.json()["errors"]}
    assert messages[(0, "header.producer")] == "'BE-CUSTOMS' does not match the publishing member 'NL-CUSTOMS'"
    assert messages[(1, "header.alert_type")] == (
        "'suspicious-container' does not match the alert type being published, 'operation-notice'")
    assert not [m for m in messages.values() if "--" in m]  # no CLI flags: this is not the CLI

    [line] = ingest.refusals()
    assert (line["system"], line["status"], line["reason"]) == ("risk-engine", 422, "validation-failed")
    assert "[0] header.producer: 'BE-CUSTOMS' does not match the publishing member 'NL-CUSTOMS'" in line["fields"]
    assert line["fields_total"] == len(messages)
    assert ingest.requests("risk-engine", 422) == 1


def test_what_a_client_sends_cannot_make_a_log_line_long_or_break_it(ingest):
    huge = "X" * 60_000 + "\n" + "Y" * 10  # within the 64 KiB an alert may have
    many = [alert(container_number=f"BAD{i}\r\nforged: line") for i in range(9)]
    assert ingest.post("suspicious-container", [alert(producer=huge), *many]).status_code == 422
    assert ingest.post("no-such-type" + "z" * 5000, alert()).status_code == 404

    lines = ingest.refusals()
    assert [(x["status"], x["system"]) for x in lines] == [(422, "risk-engine"), (404, "risk-engine")]
    for line in lines:
        rendered = json.dumps(line)
        assert len(rendered) < 3000, f"{len(rendered)} characters logged"
        assert "\n" not in "".join(str(v) for v in line.values())
    assert len(lines[0]["fields"]) == 5 and lines[0]["fields_total"] > 10


def test_kafka_down_is_logged_as_a_failure_with_its_system(ingest):
    response = ingest.post("suspicious-container", alert())
    assert response.status_code == 503
    [line] = ingest.refusals()
    assert (line["system"], line["status"], line["reason"], line["log_level"]) == (
        "risk-engine", 503, "kafka-unavailable", "error")


def test_bounded_keeps_short_text_and_marks_what_it_cut():
    assert bounded("header.tlp: not valid") == "header.tlp: not valid"
    assert bounded("a\nb\x00") == "a\\nb\\x00"
    cut = bounded("é" * 1000, 50)
    assert cut.startswith("é" * 50) and cut.endswith("…(1000 chars)") and len(cut) < 70

