"""The OpenAPI 3.1 document of the ingest API, generated from the pydantic models.

The alert schemas are the models' own JSON schemas, so the document cannot
drift from what the connector accepts; the committed copy
(`connectors/http_ingest/openapi.json`) is checked against a fresh generation
by the tests. Regenerate with `bus connector openapi --out connectors/http_ingest/openapi.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bus.core.models import ALERT_MODELS, AlertType
from connectors.http_ingest.schemas import BatchReceipt, Problem, Receipt, ValidationFailure

COMMITTED = Path(__file__).with_name("openapi.json")
REF = "#/components/schemas/{model}"
#: Header fields the connector fills in when the request leaves them out.
FILLED_BY_CONNECTOR = ("alert_type", "producer")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(alert_type: AlertType) -> dict[str, Any]:
    model = ALERT_MODELS[alert_type]
    problem = _ref(Problem)
    return {
        "operationId": f"post_{alert_type.value.replace('-', '_')}",
        "summary": f"Publish {alert_type.value} alerts",
        "description": (
            f"One {alert_type.value} alert (a JSON object) or a batch (a JSON array). Every alert "
            "is validated first; if any is invalid nothing is published and 422 lists every "
            "problem. 202 is sent only after Kafka acknowledged every alert (acks=all). "
            "header.producer is the connector's member; header.alert_type, message_id and "
            "created are filled in when absent. Resending an alert with the same message_id "
            "returns the earlier receipt instead of publishing it twice."
        ),
        "tags": ["alerts"],
        "security": [{"bearerAuth": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "oneOf": [_ref(model), {"type": "array", "items": _ref(model), "minItems": 1}]}}},
        },
        "responses": {
            "202": _json({"oneOf": [_ref(Receipt), _ref(BatchReceipt)]},
                         "Acknowledged by Kafka: a Receipt for one alert, a BatchReceipt for a batch."),
            "400": _json(problem, "The body is not JSON."),
            "401": _json(problem, "Missing or unknown bearer token."),
            "403": _json(problem, "The token's system may not post this alert type."),
            "411": _json(problem, "Content-Length missing."),
            "413": _json(problem, "Body or batch larger than the configured limits."),
            "415": _json(problem, "Content-Type is not application/json."),
            "422": _json(_ref(ValidationFailure), "Invalid alerts; nothing was published."),
            "503": _json(problem, "Kafka unavailable; nothing was acknowledged. Retry after "
                                  "Retry-After seconds with the returned message ids."),
        },
    }


def build() -> dict[str, Any]:
    models: list[type[BaseModel]] = [ALERT_MODELS[t] for t in AlertType]
    models += [Receipt, BatchReceipt, ValidationFailure, Problem]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = dict(sorted(top["$defs"].items()))
    header = schemas.get("AlertHeader", {})
    if "required" in header:
        header["required"] = [f for f in header["required"] if f not in FILLED_BY_CONNECTOR]
    paths: dict[str, Any] = {
        f"/v1/alerts/{t.value}": {"post": _operation(t)} for t in AlertType
    }
    paths["/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["meta"],
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EPA bus — HTTP ingest connector",
            "version": "1",
            "description": (
                "Agency systems post drug-trafficking alerts as JSON; the connector validates, "
                "signs them as its member (Ed25519) and publishes them to Apache Kafka. Each "
                "system authenticates with its own bearer token. Health, readiness and "
                "Prometheus metrics are served on the connector's separate health port "
                "(/healthz, /readyz, /metrics)."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "alerts"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "Per-system token; the connector stores only its SHA-256."}},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
