"""`GET /v1/alerts/{message_id}` and the SDK's receipts, on the in-memory engine.

The router is played by signed receipts written to `receipts.<member>` with the demo
router key; the connector's follower reads and verifies them as it does on Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import wire_headers
from bus.core.keys import SigningKey
from bus.core.models import new_message_id
from bus.core.receipts import RECEIPT_TYPE, sign_router_record
from bus.core.topology import receipts_topic
from connectors.http_ingest.app import STATUS_RESPONSES, openapi_document
from connectors.sdk.receipts import AlertReceipt, AlertState
from tests.helpers import wait_for
from tests.unit.ingest_on_memory import MEMBER, RISK_TOKEN, MemoryIngest, example_alert, memory_ingest, served

AUTH = {"Authorization": f"Bearer {RISK_TOKEN}"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> DemoFederation:
    return make_demo(tmp_path_factory.mktemp("federation"))


@pytest.fixture
def ingest(fed) -> Iterator[tuple[MemoryIngest, httpx.Client]]:
    with memory_ingest(receipts_from=fed.directory) as memory, served(memory.app) as (_, client):
        assert memory.services is not None and memory.services.receipts is not None
        wait_for(memory.services.receipts.following.is_set, 10, "the follower to open receipts.nl-customs")
        yield memory, client


def receipt(memory: MemoryIngest, fed: DemoFederation, message_id: str, *, signer: SigningKey | None = None,
            **fields: Any) -> None:
    """Write the router's signed receipt of `message_id` to the member's receipts topic."""
    routed = fields.get("reason") is None
    value = {"message_id": message_id, "record": "alert", "outcome": "routed" if routed else "rejected",
             "recipients": [], "recipient_count": 0, "policy_version": "p-7", "directory_version": 1,
             "reason": None, "detail": None, **fields}
    value["recipient_count"] = len(value["recipients"])
    router = signer or fed.router_signer
    assert router is not None
    data, headers = sign_router_record(router, fed.router_id, RECEIPT_TYPE, value, datetime.now(UTC),
                                       key=message_id.encode())
    memory.engine.produce_raw(receipts_topic(MEMBER), 0, data, key=message_id.encode(), headers=wire_headers(headers))


def post(client: httpx.Client) -> str:
    answer = client.post("/v1/alerts/suspicious-container", json=example_alert("suspicious-container"), headers=AUTH)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["message_id"])


def status(client: httpx.Client, message_id: str) -> httpx.Response:
    return client.get(f"/v1/alerts/{message_id}", headers=AUTH)


def state(client: httpx.Client, message_id: str) -> str | None:
    answer = status(client, message_id)
    return str(answer.json()["status"]) if answer.status_code == 200 else None


def rejected_count(memory: MemoryIngest, reason: str) -> float:
    value = memory.metrics.registry.get_sample_value(
        "bus_connector_alerts_rejected_total", {"connector": "http-ingest", "reason": reason})
    return value or 0.0


def test_an_alert_is_pending_then_routed_with_its_recipients(ingest, fed):
    memory, client = ingest
    mid = post(client)
    pending = status(client, mid)
    assert (pending.status_code, pending.json()) == (200, {"message_id": mid, "status": "pending"})
    receipt(memory, fed, mid, recipients=["EUROPOL", "BE-CUSTOMS"])
    wait_for(lambda: state(client, mid) == "routed", 10, "the routed receipt")
    assert status(client, mid).json() == {"message_id": mid, "status": "routed", "recipient_count": 2,
                                          "recipients": ["EUROPOL", "BE-CUSTOMS"], "policy_version": "p-7"}
    receipt(memory, fed, mid, reason="replay", detail="seen before")  # a copy sent again does not undo the routing
    other = post(client)
    receipt(memory, fed, other, reason="stale", detail="created 10 days ago")
    wait_for(lambda: state(client, other) == "rejected", 10, "the later receipts")
    assert state(client, mid) == "routed"


def test_a_rejected_alert_says_why_and_is_counted_and_handed_to_callbacks(ingest, fed):
    memory, client = ingest
    assert memory.services is not None
    handed: list[AlertReceipt] = []
    assert memory.services.on_receipt(handed.append)
    mid = post(client)
    receipt(memory, fed, mid, reason="key-revoked", detail="key nl-2 was revoked at 2026-11-30T10:00:00Z")
    wait_for(lambda: state(client, mid) == "rejected", 10, "the rejected receipt")
    answer = status(client, mid)
    assert answer.json() == {"message_id": mid, "status": "rejected", "reason": "key-revoked",
                             "detail": "key nl-2 was revoked at 2026-11-30T10:00:00Z", "policy_version": "p-7"}
    TypeAdapter(STATUS_RESPONSES[200]["model"]).validate_python(answer.json())
    assert rejected_count(memory, "key-revoked") == 1
    assert [(r.status.message_id, r.status.state, r.status.reason) for r in handed] == [
        (mid, AlertState.REJECTED, "key-revoked")]
    # Another producer of the member (the CLI): its status is known, but it is not this connector's
    foreign = str(uuid.uuid4())
    receipt(memory, fed, foreign, reason="stale")
    wait_for(lambda: state(client, foreign) == "rejected", 10, "the other producer's receipt")
    assert rejected_count(memory, "stale") == 0 and len(handed) == 1


def test_a_receipt_that_arrives_before_the_producers_acknowledgement_still_counts(ingest, fed):
    """The router can be faster than Kafka's answer to the producer: the receipt is handed over
    once the connector learns the alert was its own."""
    memory, client = ingest
    assert memory.services is not None
    handed: list[AlertReceipt] = []
    memory.services.on_receipt(handed.append)
    alert = example_alert("suspicious-container")
    mid = alert["header"]["message_id"] = str(new_message_id())
    receipt(memory, fed, mid, reason="type-not-allowed", detail="not this member's type")
    wait_for(lambda: state(client, mid) == "rejected", 10, "the early receipt")
    assert handed == [] and rejected_count(memory, "type-not-allowed") == 0  # not known to be ours yet
    assert client.post("/v1/alerts/suspicious-container", json=alert, headers=AUTH).status_code == 202
    assert [(r.status.message_id, r.status.reason) for r in handed] == [(mid, "type-not-allowed")]
    assert rejected_count(memory, "type-not-allowed") == 1


def test_a_receipt_that_does_not_verify_is_never_a_verdict(ingest, fed):
    memory, client = ingest
    mid = post(client)
    forged = SigningKey.generate(fed.router_id)  # not the router key the directory lists
    receipt(memory, fed, mid, signer=forged, reason="stale")
    marker = post(client)
    receipt(memory, fed, marker, recipients=["EUROPOL"])
    wait_for(lambda: state(client, marker) == "routed", 10, "the receipt written after the forged one")
    assert state(client, mid) == "pending" and rejected_count(memory, "stale") == 0


def test_unknown_ids_tokens_and_type_paths(ingest):
    _, client = ingest
    unknown = status(client, str(uuid.uuid4()))
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown-alert"
    assert status(client, "not-a-uuid").status_code == 404
    assert client.get(f"/v1/alerts/{uuid.uuid4()}").status_code == 401
    wrong_method = client.get("/v1/alerts/suspicious-container", headers=AUTH)
    assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")


def test_without_a_federation_directory_the_status_is_unavailable():
    with memory_ingest() as memory, served(memory.app) as (_, client):
        mid = post(client)
        answer = status(client, mid)
    assert answer.status_code == 503 and answer.json()["error"] == "receipts-not-followed"
    documented = openapi_document()["paths"]["/v1/alerts/{message_id}"]["get"]["responses"]
    assert set(documented) == {str(s) for s in STATUS_RESPONSES}
