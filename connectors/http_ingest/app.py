"""The ingest API as a FastAPI application, and the OpenAPI document FastAPI generates for it.

The routes only carry HTTP to and from `IngestApi` (`api.py`), which keeps the
logic. Each alert type has a documented path of its own, so the document shows
the body each accepts and every status each can answer. FastAPI does not read
or validate the bodies itself: the order of the checks is part of the contract
(the token is checked before a byte of the body is read, so an unknown client
cannot make the connector read a megabyte), and a 422 lists every problem of
every alert of a batch in the connector's terms. The request body is therefore
declared to the document with `openapi_extra`, from the alert models' own JSON
schemas, and those schemas join the components the framework generated.

The committed copy of the document (`openapi.json`, next to this module) is
compared with a fresh one by `bus connector openapi --check` and by the tests,
so every change to the API shows up in review. Regenerate it with
`bus connector openapi --out connectors/http_ingest/openapi.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import Field, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response as HttpResponse

from bus.core.models import ALERT_MODELS, AlertType
from connectors.http_ingest.api import ALERTS_PREFIX, UNIDENTIFIED, IngestApi, Refused, Response, bounded, problem
from connectors.http_ingest.schemas import AlertStatusReport, BatchReceipt, Problem, Receipt, ValidationFailure

COMMITTED = Path(__file__).with_name("openapi.json")
OPENAPI_PATH = "/openapi.json"
REF = "#/components/schemas/{model}"
FILLED_BY_CONNECTOR = ("alert_type", "producer")
"""Header fields the connector fills in when a request leaves them out: not required in the document."""

TITLE = "EPA bus — HTTP ingest connector"
DESCRIPTION = (
    "Agency systems post drug-trafficking alerts as JSON; the connector validates, signs them as "
    "its member (Ed25519) and publishes them to Apache Kafka. Each system authenticates with its "
    "own bearer token. Health, readiness and Prometheus metrics are served on the connector's "
    "separate health port (/healthz, /readyz, /metrics)."
)
POST_DESCRIPTION = (
    "One {type} alert (a JSON object) or a batch (a JSON array). Every alert is validated first; "
    "if any is invalid nothing is published and 422 lists every problem. 202 is sent only after "
    "Kafka acknowledged every alert (acks=all). header.producer is the connector's member; "
    "header.alert_type, message_id and created are filled in when absent. Resending an alert with "
    "the same message_id returns the earlier receipt instead of publishing it twice."
)

bearer = HTTPBearer(scheme_name="bearerAuth", auto_error=False,
                    description="Per-system token; the connector stores only its SHA-256.")
"""Declares the scheme to the document; `IngestApi.authorize` checks the token itself, after the
type, so that a refusal is counted under the system the token identified."""


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Receipt | BatchReceipt,
          "description": "Acknowledged by Kafka: a Receipt for one alert, a BatchReceipt for a batch."},
    400: _problem("The body is not JSON, or the client closed the connection before sending all of it."),
    401: _problem("Missing or unknown bearer token (with `WWW-Authenticate: Bearer`)."),
    403: _problem("The token's system may not post this alert type."),
    411: _problem("Content-Length missing."),
    413: _problem("Body or batch larger than the configured limits."),
    415: _problem("Content-Type is not application/json."),
    422: {"model": ValidationFailure, "description": "Invalid alerts; nothing was published."},
    500: _problem("The connector failed unexpectedly; nothing was acknowledged."),
    503: _problem("Kafka unavailable; nothing was acknowledged. Retry after Retry-After seconds "
                  "with the returned message ids."),
}
"""Every status a POST to an alert type's path can answer (a test drives each one)."""

STATUS_DESCRIPTION = (
    "What became of an alert this connector published: `pending` until the router's signed receipt "
    "arrives, then `routed` (with the recipient count and the recipients) or `rejected` (with the reason "
    "code and detail). Read from the member's own `receipts.<member>` topic, verified with the router "
    "keys of the federation directory; recent message ids only (a bounded cache, and receipts of the "
    "last `receipts.lookback_s` seconds at start)."
)
STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": AlertStatusReport, "description": "The alert's status."},
    401: _problem("Missing or unknown bearer token (with `WWW-Authenticate: Bearer`)."),
    404: _problem("Not a message id, or none this connector published or saw a receipt of recently."),
    503: _problem("The connector does not follow receipts (no federation directory configured)."),
}
"""Every status `GET /v1/alerts/{message_id}` can answer."""


class IngestApp(FastAPI):
    """FastAPI with the alert models' schemas added to the components of its document."""

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            document = super().openapi()  # cached in self.openapi_schema: completed once, here
            _add_alert_schemas(document["components"]["schemas"])
        return super().openapi()


def _alert_body(alert_type: AlertType) -> TypeAdapter[Any]:
    """What a POST for `alert_type` accepts: one alert, or a non-empty batch of them."""
    model: Any = ALERT_MODELS[alert_type]
    return TypeAdapter(model | Annotated[list[model], Field(min_length=1)])


def _body_schema(alert_type: AlertType) -> dict[str, Any]:
    schema = _alert_body(alert_type).json_schema(ref_template=REF)
    schema.pop("$defs", None)
    return schema


def _add_alert_schemas(components: dict[str, Any]) -> None:
    """The alert models' schemas (what the request bodies refer to), merged into `components`."""
    defs: dict[str, Any] = {}
    for alert_type in AlertType:
        defs.update(_alert_body(alert_type).json_schema(ref_template=REF).get("$defs", {}))
    header = defs["AlertHeader"]
    header["required"] = [f for f in header.get("required", []) if f not in FILLED_BY_CONNECTOR]
    for name, schema in defs.items():
        if components.setdefault(name, schema) != schema:
            raise AssertionError(f"two different schemas named {name} in the OpenAPI document")
    merged = sorted(components.items())
    components.clear()
    components.update(merged)


def create_app(api: IngestApi | None = None) -> FastAPI:
    """The application; `api` may be left out to generate the document without a running connector."""
    app = IngestApp(
        title=TITLE, version="1", description=DESCRIPTION, servers=[{"url": "/"}],
        openapi_tags=[{"name": "alerts"}, {"name": "meta"}],
        openapi_url=None, docs_url=None, redoc_url=None,  # /openapi.json is a documented route below
    )
    app.state.api = api
    for alert_type in AlertType:
        app.add_api_route(
            f"{ALERTS_PREFIX}{alert_type.value}", _poster(alert_type.value), methods=["POST"],
            operation_id=f"post_{alert_type.value.replace('-', '_')}",
            summary=f"Publish {alert_type.value} alerts", description=POST_DESCRIPTION.format(type=alert_type.value),
            tags=["alerts"], status_code=202, response_model=None, responses=POST_RESPONSES,
            dependencies=[Security(bearer)],
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": _body_schema(alert_type)}}}},
        )
    app.add_api_route(
        ALERTS_PREFIX + "{message_id}", _alert_status, methods=["GET"], operation_id="get_alert_status",
        summary="What became of an alert", description=STATUS_DESCRIPTION, tags=["alerts"], response_model=None,
        responses=STATUS_RESPONSES, dependencies=[Security(bearer)],
        # declared here, read from the path by the handler: FastAPI would answer a bad id with its
        # own 422 instead of the connector's 404 problem
        openapi_extra={"parameters": [{
            "name": "message_id", "in": "path", "required": True,
            "description": "The alert's message id, as the 202 receipt gave it.",
            "schema": {"type": "string", "format": "uuid"}}]},
    )
    # Any other type: refused in the same order (401 before 404), and counted under its system.
    app.add_api_route(ALERTS_PREFIX + "{type_text:path}", _post_other_type, methods=["POST"],
                      include_in_schema=False)
    app.add_api_route(OPENAPI_PATH, _openapi, methods=["GET"], operation_id="openapi", summary="This document",
                      tags=["meta"], response_model=dict[str, Any],
                      responses={200: {"description": "OpenAPI 3.1 document"}})
    app.add_exception_handler(StarletteHTTPException, _not_routed)  # type: ignore[arg-type]
    return app


def _ingest(request: Request) -> IngestApi:
    api = request.app.state.api
    if api is None:
        raise RuntimeError("this application was created without an IngestApi (document only)")
    return cast(IngestApi, api)


def _poster(type_text: str) -> Any:
    async def post(request: Request) -> HttpResponse:
        return await _post(request, type_text)

    post.__name__ = f"post_{type_text.replace('-', '_')}"
    return post


async def _post_other_type(request: Request, type_text: str) -> HttpResponse:
    if not type_text.strip("/"):
        api = _ingest(request)
        return _reply(api, problem(404, "not-found", f"POST alerts to {ALERTS_PREFIX}<alert-type>"),
                      close=_body_not_worth_receiving(request, api))
    return await _post(request, type_text.rstrip("/"))


async def _post(request: Request, type_text: str) -> HttpResponse:
    api = _ingest(request)
    authorized = api.authorize(type_text, request.headers.get("authorization"))
    if isinstance(authorized, Refused):
        return _reply(api, authorized.response, authorized.system, close=_body_not_worth_receiving(request, api))
    system, alert_type = authorized
    refused = api.refuse_length(request.headers.get("content-length"))
    if refused is not None:
        return _reply(api, refused, system.name, close=_body_not_worth_receiving(request, api))
    try:
        body = await request.body()
    except ClientDisconnect:
        return _reply(api, problem(400, "incomplete-body", "the connection closed before the whole body arrived"),
                      system.name, close=True)
    try:  # parsing, validating and waiting for Kafka block: a worker thread does them
        response = await run_in_threadpool(api.post_alerts, system, alert_type,
                                           request.headers.get("content-type"), body)
    except Exception:
        api.services.log.exception("request handling failed", system=system.name)
        response = problem(500, "internal-error", "the connector failed unexpectedly; see its log")
    return _reply(api, response, system.name)


async def _alert_status(request: Request) -> HttpResponse:
    api = _ingest(request)
    message_id = str(request.path_params["message_id"])
    if message_id in {t.value for t in AlertType}:  # an alert type's path: POST only, as before
        response = problem(405, "method-not-allowed", f"GET is not allowed on {bounded(request.url.path, 64)}")
        response.headers["Allow"] = "POST"
        return _reply(api, response)
    system, response = api.alert_status(message_id, request.headers.get("authorization"))
    return _reply(api, response, system)


async def _openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


async def _not_routed(request: Request, exc: StarletteHTTPException) -> HttpResponse:
    """404 and 405 (and any other refusal of the framework) as a Problem, logged and counted."""
    path = bounded(request.url.path, 64)
    if exc.status_code == 404:
        response = problem(404, "not-found", f"no resource {path}; POST alerts to {ALERTS_PREFIX}<alert-type>")
    elif exc.status_code == 405:
        response = problem(405, "method-not-allowed", f"{bounded(request.method, 16)} is not allowed on {path}")
    else:
        response = problem(exc.status_code, "http-error", str(exc.detail))
    response.headers.update(exc.headers or {})
    api = request.app.state.api
    if api is None:
        return _http(response)
    return _reply(api, response, close=_body_not_worth_receiving(request, api))


def _body_not_worth_receiving(request: Request, api: IngestApi) -> bool:
    """Whether a request answered without reading its body should lose its connection.

    uvicorn receives and discards the unread body of a request that keeps its connection.
    That is right for most refusals: closing a socket with unread data in it resets the
    connection, and the client may lose the answer. A body declared larger than the limit
    is not worth receiving only to discard it (its client may then see a reset instead of 413).
    """
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) > api.settings.max_body_bytes


def _reply(api: IngestApi, response: Response, system: str = UNIDENTIFIED, close: bool = False) -> HttpResponse:
    api.answered(system, response)
    reply = _http(response)
    if close:
        reply.headers["Connection"] = "close"
    return reply


def _http(response: Response) -> HttpResponse:
    return HttpResponse(response.encode(), response.status, response.headers, media_type="application/json")


def openapi_document() -> dict[str, Any]:
    """The document as the application generates it (no connector needed)."""
    return create_app().openapi()


def render_openapi() -> str:
    """The document as committed in `openapi.json`."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
