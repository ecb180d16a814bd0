"""Alert <-> signed Kafka record: the whole pipeline, both ways, without I/O.

`unseal` verifies the signature *before* it decodes the value: the key is
chosen from the (signed) headers, so untrusted bytes never reach the Avro
decoder or the models unless a key the resolver accepts signed them, and any
tampering with the key, the covered headers or the value reports
`bad-signature` instead of whatever the decoder happens to trip over. Once
decoded, the body must agree with the headers it was signed with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.envelope import build_headers, format_time, parse_headers
from bus.core.keyring import KeyResolver
from bus.core.keys import SigningKey
from bus.core.models import ALERT_MODELS, AlertType, BaseAlert
from bus.core.signing import Headers, sign_record, signature_of, verify_record
from bus.errors import (
    AlertValidationError,
    BusError,
    RejectReason,
    SchemaError,
    SignatureError,
    VerificationError,
)

TOPIC_PREFIX = "alerts."


def alert_topic(alert_type: str) -> str:
    """The topic an originator publishes an alert type to."""
    return f"{TOPIC_PREFIX}{alert_type}"


@dataclass(frozen=True)
class SealedRecord:
    """A record ready for `producer.send(topic, key=, value=, headers=)`."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class VerifiedAlert:
    """An alert whose originator signature verified and whose envelope matches it."""

    alert: BaseAlert
    key_id: str
    producer: str
    message_id: UUID
    alert_type: AlertType
    created: datetime
    value_size: int


def seal(alert: BaseAlert, signer: SigningKey, schemas: SchemaSet) -> SealedRecord:
    """Encode, wrap in CloudEvents headers and sign an alert as its producer."""
    header = alert.header
    if signer.member != header.producer:
        raise BusError(
            f"key of {signer.member} cannot sign an alert produced by {header.producer}"
        )
    alert_type = str(alert.alert_type)
    value = schemas.encode(alert_type, alert.to_avro())
    key = alert.partition_key().encode()
    headers = build_headers(
        message_id=header.message_id,
        producer=header.producer,
        alert_type=alert_type,
        time=header.created,
        key_id=signer.key_id,
    )
    signed = sign_record(signer, key, headers, value)
    return SealedRecord(alert_topic(alert_type), key, value, signed)


def unseal(
    key: bytes | None,
    value: bytes,
    headers: Headers,
    resolver: KeyResolver,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
) -> VerifiedAlert:
    """Verify a received record and return its alert, or raise VerificationError.

    Steps (docs/wire-format.md, "Verification"): parse the envelope, resolve the
    key from its claims, verify the signature over the received bytes, decode
    the value, build the model, check the body agrees with the envelope.
    `schemas` decodes the value and `empact_codes` checks its EMPACT priority
    (`bus.adapters.schema_files` loads both; the core reads no files).
    """
    meta = parse_headers(headers)
    signature_of(headers)  # an unsigned record is refused before any key lookup
    public = resolver.resolve(meta.key_id, meta.producer, meta.alert_type, meta.time)
    if public.key_id != meta.key_id:
        raise VerificationError(
            f"resolver returned key {public.key_id} for key id {meta.key_id}",
            RejectReason.UNKNOWN_KEY,
        )
    verify_record(public, key, headers, value)

    alert_type, record = schemas.decode(value)
    if alert_type != meta.alert_type:
        raise SignatureError(
            f"header ce_type says {meta.alert_type}, disagrees with body schema {alert_type}"
        )
    alert = _model(alert_type, record, empact_codes)

    h = alert.header
    _agree("ce_id", meta.id, str(h.message_id))
    _agree("ce_source", meta.producer, h.producer)
    _agree("ce_type", meta.alert_type, str(alert.alert_type))
    _agree("ce_time", format_time(meta.time), format_time(h.created))
    return VerifiedAlert(
        alert=alert,
        key_id=meta.key_id,
        producer=h.producer,
        message_id=h.message_id,
        alert_type=alert.alert_type,
        created=h.created,
        value_size=len(value),
    )


def _model(alert_type: str, record: dict[str, Any], empact_codes: EmpactCodeList) -> BaseAlert:
    try:
        model = ALERT_MODELS[AlertType(alert_type)]
    except (ValueError, KeyError):
        raise SchemaError(f"no alert model for type {alert_type!r}") from None
    try:
        return model.from_avro(record, empact_codes=empact_codes)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<alert>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SchemaError(f"{alert_type} body is not a valid alert: {fields}") from None
    except AlertValidationError as exc:
        fields = "; ".join(f"{loc}: {msg}" for loc, msg in exc.errors)
        raise SchemaError(f"{alert_type} body is not a valid alert: {fields}") from None


def _agree(header: str, claimed: str, body: str) -> None:
    if claimed != body:
        raise SignatureError(f"header {header} ({claimed}) disagrees with body ({body})")
