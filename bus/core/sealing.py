"""Alert <-> signed Kafka record: the whole pipeline, both ways, without I/O.

`unseal` verifies the signature *before* it judges the key's validity or
decodes the value: the key is chosen from the (signed) headers, so untrusted
bytes never reach the Avro decoder or the models unless the claimed producer's
key signed them, any tampering with the key, the covered headers or the value
reports `bad-signature` instead of whatever the decoder happens to trip over,
and every later verdict is about a record its producer provably sent. Once
decoded, the body must agree with the headers it was signed with.

Encrypted alerts (`bus.core.confidential`) are signed and verified by the same
`authenticate` step; only what is inside the value differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from bus.core import topology
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.envelope import CloudEventMeta, build_headers, format_time, parse_covered
from bus.core.keyring import KeyResolver
from bus.core.keys import SigningKey
from bus.core.models import ALERT_MODELS, AlertType, BaseAlert
from bus.core.signing import (
    V1_0_ACCEPTED_UNTIL,
    Headers,
    WireVersion,
    covered_values,
    require_supported,
    sign_built,
    signature_of,
    verify_covered,
)
from bus.errors import (
    AlertValidationError,
    BusError,
    RejectReason,
    SchemaError,
    SignatureError,
    VerificationError,
)

TOPIC_PREFIX = topology.ALERT_TOPIC_PREFIX
alert_topic = topology.alert_topic


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
    wire_version: WireVersion = WireVersion.V1_1
    encrypted: bool = False
    """True if the alert travelled encrypted and was decrypted by this reader."""


def seal(alert: BaseAlert, signer: SigningKey, schemas: SchemaSet) -> SealedRecord:
    """Encode, wrap in CloudEvents headers and sign an alert as its producer."""
    check_signer(alert, signer)
    value = schemas.encode(str(alert.alert_type), alert.to_avro())
    return sign_value(alert, signer, alert.partition_key().encode(), value)


def check_signer(alert: BaseAlert, signer: SigningKey) -> None:
    """Only the producer's own key may sign its alert."""
    if signer.member != alert.header.producer:
        raise BusError(
            f"key of {signer.member} cannot sign an alert produced by {alert.header.producer}"
        )


def sign_value(alert: BaseAlert, signer: SigningKey, key: bytes, value: bytes) -> SealedRecord:
    """The signed record of `alert` with the given record key and value (plain or encrypted)."""
    check_signer(alert, signer)
    header = alert.header
    alert_type = str(alert.alert_type)
    headers = build_headers(
        message_id=header.message_id,
        producer=header.producer,
        alert_type=alert_type,
        time=header.created,
        key_id=signer.key_id,
    )
    signed = sign_built(signer, key, headers, value)  # headers straight from build_headers
    return SealedRecord(alert_topic(alert_type), key, value, signed)


def unseal(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    resolver: KeyResolver,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
    *,
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
) -> VerifiedAlert:
    """Verify a received record and return its alert, or raise VerificationError.

    Steps, first failure wins (docs/wire-format.md, "Verification"): parse the
    envelope; one `bus_sig` of a valid shape; look the key up and check the
    claimed producer owns it; verify the signature over the received bytes;
    the format is still accepted at `ce_time`; the key's status at `ce_time`
    and the producer's right to the type; decode the value; build the model;
    check the body agrees with the envelope.

    Every error raised after the signature verified carries `producer`: only
    then is it known who sent the record, so only then may they be told why.
    An encrypted alert is refused with reason `encrypted` after its signature
    verified: read those with `bus.core.confidential.unseal_any` (and `decrypt`).
    `schemas` decodes the value and `empact_codes` checks its EMPACT priority
    (`bus.adapters.schema_files` loads both; the core reads no files).
    """
    meta, version = authenticate(key, value, headers, resolver, accept_v1_0_until=accept_v1_0_until)
    assert value is not None  # authenticate refuses a null value
    with attributed_to(meta.producer):
        if schemas.is_encrypted(value):
            raise VerificationError(
                f"alert {meta.id} is encrypted; this verifier does not decrypt "
                "(bus.core.confidential.unseal_any, or a reader given the member's decryption key)",
                RejectReason.ENCRYPTED,
            )
        return decode_verified(meta, value, schemas, empact_codes, version=version)


def authenticate(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    resolver: KeyResolver,
    *,
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
) -> tuple[CloudEventMeta, WireVersion]:
    """Verification up to the value: the envelope, the key, the signature over the
    received bytes, the format's window and the key's status and rights at `ce_time`.

    Returns the envelope's claims, now authenticated, and the wire format version;
    nothing of the value is decoded. Plain and encrypted alerts share this step.
    """
    covered = covered_values(headers)  # extracted once: the envelope and the signature use them
    meta = parse_covered(covered)
    if value is None:
        raise SchemaError("record value is null: an alert record always carries its Avro value")
    signature = signature_of(headers)  # an unsigned or malformed signature is refused before any key lookup
    public = resolver.lookup(meta.key_id, meta.producer)
    if public.key_id != meta.key_id:
        raise VerificationError(
            f"resolver returned key {public.key_id} for key id {meta.key_id}",
            RejectReason.UNKNOWN_KEY,
        )
    version = verify_covered(public, key, covered, signature, value)
    with attributed_to(meta.producer):
        require_supported(version, meta.time, accept_v1_0_until)
        resolver.authorize(meta.key_id, meta.producer, meta.alert_type, meta.time)
    return meta, version


@contextmanager
def attributed_to(producer: str) -> Iterator[None]:
    """Verdicts reached after the signature verified name the producer that provably sent
    the record: the router may tell that producer (a receipt), and nobody else."""
    try:
        yield
    except VerificationError as exc:
        if exc.producer is None:
            exc.producer = producer
        raise


def decode_verified(
    meta: CloudEventMeta,
    value: bytes,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
    *,
    version: WireVersion = WireVersion.V1_1,
    encrypted: bool = False,
) -> VerifiedAlert:
    """Decode an authenticated plain alert value, validate it, check it agrees with `meta`."""
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
    if meta.time != h.created:  # one instant has one spelling: only different ones need writing out
        _agree("ce_time", format_time(meta.time), format_time(h.created))
    return VerifiedAlert(
        alert=alert,
        key_id=meta.key_id,
        producer=h.producer,
        message_id=h.message_id,
        alert_type=alert.alert_type,
        created=h.created,
        value_size=len(value),
        wire_version=version,
        encrypted=encrypted,
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
