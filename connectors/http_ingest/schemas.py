"""Response bodies of the ingest API: one definition for the code and the OpenAPI document."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from bus.core.models import AlertType


class Receipt(BaseModel):
    """Kafka acknowledged the alert (acks=all): it is durably on the alert topic."""

    message_id: UUID
    alert_type: AlertType
    topic: str = Field(examples=["alerts.suspicious-container"])
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class BatchReceipt(BaseModel):
    """Every alert of the batch was acknowledged, in request order."""

    receipts: list[Receipt]


class AlertStatusReport(BaseModel):
    """What became of an alert, from the router's signed receipt on the member's receipts topic."""

    message_id: UUID
    status: Literal["pending", "routed", "rejected"] = Field(
        description="pending: published by this connector, no receipt yet; routed: delivered to "
                    "`recipient_count` members; rejected: dead-lettered for `reason`.")
    recipient_count: int | None = Field(default=None, ge=0, description="Routed: how many members received it.")
    recipients: list[str] | None = Field(default=None, description="Routed: the members that received it.",
                                         examples=[["EUROPOL", "BE-CUSTOMS"]])
    reason: str | None = Field(default=None, description="Rejected: the reason code, e.g. key-revoked or stale.",
                               examples=["key-revoked"])
    detail: str | None = Field(default=None, description="Rejected: the router's explanation (bounded).")
    policy_version: str | None = Field(default=None, description="The routing policy that decided.")


class FieldError(BaseModel):
    item: int | None = Field(description="Index in the batch; null for a single alert.")
    loc: str = Field(description="Field path, e.g. header.tlp or container_number.",
                     examples=["container_number"])
    msg: str = Field(examples=["check digit does not match"])


class ValidationFailure(BaseModel):
    """Nothing was published: every problem in the request is listed."""

    error: str = Field(default="validation-failed", examples=["validation-failed"])
    detail: str
    errors: list[FieldError]


class Problem(BaseModel):
    """A request that was not processed; `error` is a stable code, `detail` is for humans."""

    error: str = Field(examples=["kafka-unavailable"])
    detail: str
    message_ids: list[UUID] = Field(
        default_factory=list,
        description="On 503: the ids given to the alerts; resend them with these ids so that "
                    "nothing is duplicated if some did reach Kafka.")
