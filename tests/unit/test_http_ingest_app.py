"""http-ingest's HTTP contract on FastAPI + uvicorn, with the in-memory Kafka engine.

The OpenAPI document a client downloads is the committed one, and for every alert
type it lists exactly the statuses the endpoint answers: each is driven here, and its
body is the documented model. A request in flight when the connector stops is answered
before the server goes away.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from structlog.testing import capture_logs

from bus.core.models import AlertType
from bus.core.topology import alert_topic
from connectors.http_ingest.api import ALERTS_PREFIX
from connectors.http_ingest.app import COMMITTED, POST_RESPONSES, create_app, openapi_document
from connectors.http_ingest.server import IngestServer
from tests.helpers import wait_for
from tests.unit.ingest_on_memory import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    NOTICE_TOKEN,
    RISK_TOKEN,
    SCAN_TOKEN,
    MemoryIngest,
    example_alert,
    memory_ingest,
    served,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: httpx.Client, alert_type: str, body: Any, token: str | None = RISK_TOKEN) -> httpx.Response:
    return client.post(f"{ALERTS_PREFIX}{alert_type}", json=body, headers=bearer(token) if token else {})


def raw(client: httpx.Client, alert_type: str, content: Any, content_type: str = "application/json") -> httpx.Response:
    return client.post(f"{ALERTS_PREFIX}{alert_type}", content=content,
                       headers={**bearer(RISK_TOKEN), "Content-Type": content_type})


def declared_only(client: httpx.Client, alert_type: str, length: int) -> httpx.Response:
    """A request that declares a body of `length` bytes and sends none: the answer cannot race a
    body the server closes the connection on."""
    host, port = str(client.base_url.host), int(client.base_url.port or 80)
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(f"POST {ALERTS_PREFIX}{alert_type} HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {RISK_TOKEN}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {length}\r\n\r\n".encode())
        with connection.makefile("rb") as answer:
            status_line = answer.readline().decode()
            headers = {}
            while (line := answer.readline().decode().strip()):
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            body = answer.read(int(headers["content-length"]))
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def documented(alert_type: str) -> dict[str, Any]:
    return openapi_document()["paths"][f"{ALERTS_PREFIX}{alert_type}"]["post"]["responses"]  # type: ignore[no-any-return]


@pytest.fixture
def ingest() -> Iterator[tuple[MemoryIngest, httpx.Client]]:
    with memory_ingest(ack_timeout_s=0.5) as memory, served(memory.app) as (_, client):
        yield memory, client


def test_the_served_document_is_the_committed_one(ingest):
    _, client = ingest
    served_document = client.get("/openapi.json")
    assert served_document.status_code == 200
    assert served_document.json() == json.loads(COMMITTED.read_text()) == openapi_document()


@pytest.mark.parametrize("alert_type", [t.value for t in AlertType])
def test_each_alert_endpoint_documents_exactly_the_statuses_it_answers(alert_type):
    """Every status the endpoint answers is driven below and its body is the documented model;
    every status the document lists is among them (none is stale)."""
    refused_type_token = NOTICE_TOKEN if alert_type == "suspicious-container" else SCAN_TOKEN
    invalid = example_alert(alert_type)
    invalid["header"]["tlp"] = "PURPLE"
    answers: list[httpx.Response] = []
    with memory_ingest(ack_timeout_s=0.5) as memory, served(memory.app) as (_, client):
        one = post(client, alert_type, example_alert(alert_type))
        batch = post(client, alert_type, [example_alert(alert_type), example_alert(alert_type)])
        answers += [
            one, batch,
            raw(client, alert_type, b"{not json"),
            post(client, alert_type, example_alert(alert_type), token=None),
            post(client, alert_type, example_alert(alert_type), token=refused_type_token),
            raw(client, alert_type, iter([b"{}"])),  # chunked: no Content-Length
            declared_only(client, alert_type, MAX_BODY_BYTES + 1),
            post(client, alert_type, [example_alert(alert_type)] * (MAX_BATCH + 1)),
            raw(client, alert_type, b"{}", content_type="text/plain"),
            post(client, alert_type, invalid),
        ]
        memory.engine.faults.go_down()
        answers.append(post(client, alert_type, example_alert(alert_type)))
        on_kafka = {(r.partition, r.offset) for r in memory.engine.records(alert_topic(alert_type))}

    def fails(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug in the publisher")

    with memory_ingest(factory=fails) as broken, served(broken.app) as (_, client):
        answers.append(post(client, alert_type, example_alert(alert_type)))

    statuses = [a.status_code for a in answers]
    assert statuses == [202, 202, 400, 401, 403, 411, 413, 413, 415, 422, 503, 500], [a.text for a in answers]
    receipts = [one.json(), *batch.json()["receipts"]]
    assert {(r["partition"], r["offset"]) for r in receipts} == on_kafka and len(on_kafka) == 3
    assert set(documented(alert_type)) == {str(s) for s in statuses}
    assert answers[6].headers["connection"] == "close"  # a body over the limit is not received
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        TypeAdapter(POST_RESPONSES[answer.status_code]["model"]).validate_python(answer.json())


def test_unknown_paths_and_methods_are_refused_as_problems_and_logged(ingest):
    _, client = ingest
    with capture_logs() as logs:
        missing = client.get("/v1/nothing")
        wrong_method = client.get(f"{ALERTS_PREFIX}suspicious-container")
    assert (missing.status_code, missing.json()["error"]) == (404, "not-found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method-not-allowed")
    assert wrong_method.headers["Allow"] == "POST"
    assert [(x["event"], x["system"], x["status"]) for x in logs] == [
        ("request rejected", "-", 404), ("request rejected", "-", 405)]


def test_a_request_in_flight_when_the_connector_stops_gets_its_answer():
    """The runtime sets `stop`, then stops the server: the server waits for the request it is
    handling, whose publish ends when Kafka answers, and the client hears the truth."""
    with memory_ingest(ack_timeout_s=20) as memory:
        server = IngestServer(memory.app, "127.0.0.1", 0, grace_s=30)
        server.start()
        url = "http://{}:{}{}suspicious-container".format(*server.address, ALERTS_PREFIX)
        memory.engine.faults.go_down()
        answered: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answered.append(
            httpx.post(url, json=example_alert("suspicious-container"), headers=bearer(RISK_TOKEN), timeout=30)))
        client.start()
        wait_for(memory.sending.is_set, what="the alert to be sent to Kafka")
        memory.stop.set()
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        stopping.join(0.5)
        assert stopping.is_alive(), "the server stopped with a request in flight"
        memory.engine.faults.come_back()
        stopping.join(30)
        client.join(30)
        assert not stopping.is_alive()
        [response] = answered
        assert response.status_code == 202, response.text
        [record] = memory.engine.records(alert_topic("suspicious-container"))
        assert dict(record.headers)[b"ce_id"] == response.json()["message_id"].encode()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url.replace(f"{ALERTS_PREFIX}suspicious-container", "/openapi.json"))


def test_a_port_in_use_fails_when_the_server_is_made():
    with memory_ingest() as memory:
        first = IngestServer(memory.app, "127.0.0.1", 0, grace_s=1)
        try:
            with pytest.raises(OSError):
                IngestServer(create_app(), "127.0.0.1", first.address[1], grace_s=1)
        finally:
            first.close()
