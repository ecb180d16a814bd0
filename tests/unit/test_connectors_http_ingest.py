"""http-ingest without Kafka: tokens, configuration, and the committed OpenAPI document."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bus.errors import ConnectorConfigError
from connectors.http_ingest.app import COMMITTED, openapi_document, render_openapi
from connectors.http_ingest.auth import TokenTable, hash_token, new_token
from connectors.http_ingest.config import IngestSettings, SystemToken


def test_committed_openapi_document_is_the_generated_one():
    assert COMMITTED.read_text() == render_openapi(), (
        "connectors/http_ingest/openapi.json is stale: run "
        "`bus connector openapi --out connectors/http_ingest/openapi.json`")


def test_openapi_describes_every_alert_type_from_the_models():
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/alerts/suspicious-container", "/v1/alerts/corruption-indicator",
                                 "/v1/alerts/operation-notice", "/v1/alerts/{message_id}", "/openapi.json"}
    post = doc["paths"]["/v1/alerts/suspicious-container"]["post"]
    assert set(post["responses"]) >= {"202", "401", "403", "422", "503"}
    assert set(doc["paths"]["/v1/alerts/{message_id}"]) == {"get"}  # what became of an alert
    schemas = doc["components"]["schemas"]
    assert "container_number" in schemas["SuspiciousContainerAlert"]["properties"]
    assert "producer" not in schemas["AlertHeader"]["required"]  # the connector fills it in
    assert json.loads(render_openapi()) == doc


def test_tokens_match_by_hash_or_environment(monkeypatch):
    token, env_token = new_token(), new_token()
    monkeypatch.setenv("SCANNER_TOKEN", env_token)
    table = TokenTable([
        SystemToken(name="risk", token_sha256=hash_token(token), alert_types=["suspicious-container"]),
        SystemToken(name="scanner", token_env="SCANNER_TOKEN", alert_types=["*"]),
    ])
    assert table.system_for(f"Bearer {token}").name == "risk"
    assert table.system_for(f"bearer {env_token}").name == "scanner"
    for header in (None, "", token, f"Basic {token}", "Bearer ", f"Bearer {token}x"):
        assert table.system_for(header) is None


def test_token_config_errors(monkeypatch):
    monkeypatch.setenv("SHORT_TOKEN", "short")
    with pytest.raises(ConnectorConfigError, match="SHORT_TOKEN must hold a token of at least 32"):
        TokenTable([SystemToken(name="x", token_env="SHORT_TOKEN", alert_types=["*"])])
    with pytest.raises(ValidationError, match="exactly one of token_sha256 or token_env"):
        SystemToken(name="x", alert_types=["*"])
    with pytest.raises(ValidationError, match="system names must be unique"):
        IngestSettings(systems=[SystemToken(name="x", token_sha256="0" * 64, alert_types=["*"])] * 2)
    with pytest.raises(ValidationError):
        SystemToken(name="x", token_sha256="0" * 64, alert_types=["bogus-type"])
