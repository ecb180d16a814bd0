"""The ingest API's logic, independent of the web framework that carries it (`app.py`).

Nothing is published unless every alert of the request is valid, and 202 is
only sent once Kafka acknowledged every alert of the request. Every answer is
counted by system and status; every refusal is also logged, as one bounded line.
The checks run in a fixed order, cheapest and least trusting first: the token
(401), the alert type (404) and the system's right to post it (403) from the
request line and headers, then the declared length (411/413) before a byte of
the body is read, then the body itself (415, 400, 422, 413 for a batch).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bus.core.models import AlertType, BaseAlert, parse_alert
from bus.errors import AlertValidationError, BusError, PublishError
from bus.services.publisher import Receipt as KafkaReceipt
from connectors.http_ingest.auth import TokenTable
from connectors.http_ingest.config import IngestSettings, SystemToken
from connectors.http_ingest.schemas import (
    AlertStatusReport,
    BatchReceipt,
    FieldError,
    Problem,
    Receipt,
    ValidationFailure,
)
from connectors.sdk.receipts import AlertState, AlertStatus
from connectors.sdk.runtime import Services

ALERTS_PREFIX = "/v1/alerts/"
"""Alerts of type T are posted to ALERTS_PREFIX + T."""
UNIDENTIFIED = "-"
"""The system label of a request whose token was missing or unknown."""
MAX_LOGGED_CHARS = 200
MAX_LOGGED_FIELDS = 5


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def problem(status: int, error: str, detail: str, **extra: Any) -> Response:
    return Response(status, Problem(error=error, detail=detail, **extra).model_dump(mode="json"))


@dataclass(frozen=True)
class Refused:
    """A request turned away on its request line and headers, and the system that sent it
    when its token identified one (a 403 belongs to that system, not to "-")."""

    response: Response
    system: str = UNIDENTIFIED


def bounded(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """Client-supplied text made safe for one log line: printable, and at most `limit` characters."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return shown if len(text) <= limit and len(shown) <= limit else f"{shown[:limit]}…({len(text)} chars)"


def rejection_fields(system: str, response: Response) -> dict[str, Any]:
    """What the log says about a refused request: never a token, never an unbounded value."""
    body = response.body if isinstance(response.body, dict) else {}
    fields: dict[str, Any] = {"system": system, "status": response.status,
                              "reason": bounded(str(body.get("error", "")), 64),
                              "detail": bounded(str(body.get("detail", "")))}
    errors = body.get("errors") or []
    if errors:
        fields["fields"] = [bounded(_field_error(e)) for e in errors[:MAX_LOGGED_FIELDS]]
        fields["fields_total"] = len(errors)
    return fields


def _field_error(error: dict[str, Any]) -> str:
    item = error.get("item")
    return f"{'' if item is None else f'[{item}] '}{error.get('loc')}: {error.get('msg')}"


class ReceiptCache:
    """Recently acknowledged ids: a client retrying after a lost 202 gets it again, no duplicate."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Receipt] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, message_id: str) -> Receipt | None:
        with self._lock:
            receipt = self._items.get(message_id)
            if receipt is not None:
                self._items.move_to_end(message_id)
            return receipt

    def put(self, receipt: Receipt) -> None:
        if not self.size:
            return
        with self._lock:
            self._items[str(receipt.message_id)] = receipt
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class IngestApi:
    def __init__(self, settings: IngestSettings, tokens: TokenTable, services: Services) -> None:
        self.settings = settings
        self.tokens = tokens
        self.services = services
        self.cache = ReceiptCache(settings.dedupe_cache)
        self.requests = services.metrics.counter(
            "bus_connector_http_requests", "Ingest requests by system and status.", ["system", "status"])

    def answered(self, system: str, response: Response) -> None:
        """Count the answer by system and status; log it too if it refuses the request."""
        self.requests.labels(self.services.name, system, str(response.status)).inc()
        if response.status >= 500:
            self.services.log.error("request failed", **rejection_fields(system, response))
        elif response.status >= 400:
            self.services.log.warning("request rejected", **rejection_fields(system, response))

    def authorize(self, type_text: str, authorization: str | None) -> tuple[SystemToken, AlertType] | Refused:
        """Checks that need only the request line and headers (before reading the body).

        `type_text` is the path after ALERTS_PREFIX, as the client sent it."""
        system = self.tokens.system_for(authorization)
        if system is None:
            self.services.metrics.rejected_inc("unauthorized")
            response = problem(401, "unauthorized", "a valid `Authorization: Bearer <token>` is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="bus-http-ingest"'
            return Refused(response)
        try:
            alert_type = AlertType(type_text)
        except ValueError:
            valid = ", ".join(t.value for t in AlertType)
            return Refused(problem(404, "unknown-alert-type",
                                   f"no alert type {bounded(type_text, 64)!r}; valid types: {valid}"), system.name)
        if not system.allows(alert_type):
            self.services.metrics.rejected_inc("forbidden")
            return Refused(problem(403, "forbidden", f"system {system.name} may not post {alert_type.value} alerts"),
                           system.name)
        return system, alert_type

    def alert_status(self, message_id: str, authorization: str | None) -> tuple[str, Response]:
        """`GET /v1/alerts/{message_id}`: (the system that asked, the answer). Any system of the
        member may ask about any of the member's recent alerts: the receipts are the member's."""
        system = self.tokens.system_for(authorization)
        if system is None:
            response = problem(401, "unauthorized", "a valid `Authorization: Bearer <token>` is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="bus-http-ingest"'
            return UNIDENTIFIED, response
        if self.services.receipts is None:
            return system.name, problem(
                503, "receipts-not-followed", "this connector does not follow its member's receipts: give it "
                "publish.federation and publish.authority_pub (the router keys that sign receipts)")
        try:
            wanted = str(uuid.UUID(message_id))
        except ValueError:
            return system.name, problem(404, "unknown-alert", f"{bounded(message_id, 64)!r} is not a message id")
        status = self.services.statuses.get(wanted)
        if status is None:
            return system.name, problem(404, "unknown-alert", f"no recent alert {wanted}: not published by this "
                                        "connector since it started, and no receipt of it in the recent window")
        return system.name, Response(200, _status_report(status).model_dump(mode="json", exclude_none=True))

    def refuse_length(self, content_length: str | None) -> Response | None:
        """411 or 413 from the declared length, so that an oversized body is never read."""
        if content_length is None or not content_length.isdigit():
            return problem(411, "length-required", "send a Content-Length header")
        if int(content_length) > self.settings.max_body_bytes:
            return problem(413, "payload-too-large",
                           f"body of {content_length} bytes; at most {self.settings.max_body_bytes}")
        return None

    def post_alerts(self, system: SystemToken, alert_type: AlertType, content_type: str | None,
                    body: bytes) -> Response:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return problem(415, "unsupported-media-type", "send the alerts as Content-Type: application/json")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return problem(400, "invalid-json", f"request body is not JSON: {exc}")
        batch = isinstance(data, list)
        items = data if batch else [data]
        if not items:
            return self._invalid([FieldError(item=None, loc="body", msg="empty batch")])
        if len(items) > self.settings.max_batch:
            return problem(413, "batch-too-large",
                           f"{len(items)} alerts in one request; at most {self.settings.max_batch}")
        alerts, errors = self._parse(items, alert_type, batch)
        if errors:
            self.services.metrics.rejected_inc("invalid-alert", len({e.item for e in errors}))
            return self._invalid(errors)
        try:
            receipts = self._publish(alerts)
        except PublishError as exc:
            self.services.metrics.rejected_inc("kafka-unavailable", len(alerts))
            response = problem(503, "kafka-unavailable", f"Kafka did not acknowledge the alerts: {exc}",
                               message_ids=[a.header.message_id for a in alerts])
            response.headers["Retry-After"] = str(self.settings.retry_after_s)
            return response
        except BusError as exc:
            return problem(500, "internal-error", str(exc))
        self.services.log.info("alerts accepted", system=system.name, alert_type=alert_type.value,
                               alerts=len(receipts), message_ids=[str(r.message_id) for r in receipts])
        if batch:
            return Response(202, BatchReceipt(receipts=receipts).model_dump(mode="json"))
        return Response(202, receipts[0].model_dump(mode="json"))

    def _parse(self, items: list[Any], alert_type: AlertType,
               batch: bool) -> tuple[list[BaseAlert], list[FieldError]]:
        alerts: list[BaseAlert] = []
        errors: list[FieldError] = []
        member = self.services.signer.member
        for index, item in enumerate(items):
            where = index if batch else None
            try:
                alert = parse_alert(item, empact_codes=self.services.empact_codes, alert_type=alert_type,
                                    producer=member)
            except AlertValidationError as exc:
                errors += [FieldError(item=where, loc=loc, msg=msg) for loc, msg in exc.errors]
                continue
            for text in self.services.publisher.sealing_problems(alert):
                loc, _, msg = text.partition(": ")
                errors.append(FieldError(item=where, loc=loc, msg=msg))
            alerts.append(alert)
        ids = [str(a.header.message_id) for a in alerts]
        errors += [FieldError(item=i if batch else None, loc="header.message_id",
                              msg="duplicate message id in this request")
                   for i, mid in enumerate(ids) if ids.index(mid) != i]
        return alerts, errors

    def _publish(self, alerts: list[BaseAlert]) -> list[Receipt]:
        cached = {str(a.header.message_id): self.cache.get(str(a.header.message_id)) for a in alerts}
        fresh = [a for a in alerts if cached[str(a.header.message_id)] is None]
        published = {r.message_id: _receipt(r) for r in self.services.publisher.publish(fresh)}
        for receipt in published.values():
            self.cache.put(receipt)
        return [cached[mid] or published[mid] for mid in (str(a.header.message_id) for a in alerts)]

    def _invalid(self, errors: list[FieldError]) -> Response:
        items = sorted({e.item for e in errors if e.item is not None})
        where = f" in item(s) {', '.join(map(str, items))}" if items else ""
        body = ValidationFailure(detail=f"{len(errors)} problem(s){where}; nothing was published",
                                 errors=errors)
        return Response(422, body.model_dump(mode="json"))


def _status_report(status: AlertStatus) -> AlertStatusReport:
    if status.state is AlertState.ROUTED:
        return AlertStatusReport(message_id=uuid.UUID(status.message_id), status="routed",
                                 recipient_count=status.recipient_count, recipients=list(status.recipients),
                                 policy_version=status.policy_version)
    if status.state is AlertState.REJECTED:
        return AlertStatusReport(message_id=uuid.UUID(status.message_id), status="rejected", reason=status.reason,
                                 detail=status.detail, policy_version=status.policy_version)
    return AlertStatusReport(message_id=uuid.UUID(status.message_id), status="pending")


def _receipt(receipt: KafkaReceipt) -> Receipt:
    return Receipt.model_validate(receipt.as_dict())
