"""Receipts, audit proofs and acknowledgements: the signed records besides alerts.

All use the alerts' envelope and signature scheme (CloudEvents headers, the
covered headers of `bus.core.signing`, Ed25519 over the same signing input), with
a JSON value (`content-type: application/json`):

| ce_type | signed by | ce_source | value |
|---|---|---|---|
| `eu.epa.receipt.v1` | a router key | `urn:epa:router:<router id>` | what became of one record |
| `eu.epa.audit-proof.v1` | a router key | `urn:epa:router:<router id>` | a checkpoint and inclusion proofs |
| `eu.epa.ack.v1` | a member key | `urn:epa:member:<member id>` | a recipient's acknowledgement |

Routers' keys are listed in the federation directory's `routers` section
(`FederationDirectory.router_key`); a member's acknowledgement is checked like an
alert's signature (`lookup`, signature, key status at `ce_time`), without the alert
type rights. Layouts: docs/wire-format.md, "Receipts and acknowledgements".

Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bus.core.audit import RouterKeys
from bus.core.bounded import capped
from bus.core.envelope import KEY_ID_RE, SOURCE_PREFIX, TIME_RE, format_time
from bus.core.keyring import KeyResolver
from bus.core.keys import SigningKey
from bus.core.models import MEMBER_ID_RE
from bus.core.sealing import attributed_to
from bus.core.signing import Headers, covered_values, sign_record, verify_record
from bus.errors import RejectReason, SchemaError, SignatureError, VerificationError, quote

RECEIPT_TYPE = "eu.epa.receipt.v1"
PROOF_TYPE = "eu.epa.audit-proof.v1"
ACK_TYPE = "eu.epa.ack.v1"
JSON_CONTENT_TYPE = "application/json"
ROUTER_SOURCE_PREFIX = "urn:epa:router:"
NOTE_LIMIT = 512
"""Characters of an acknowledgement's free-text note."""


class AckStatus(StrEnum):
    """What a recipient says about an alert it received (MISP calls these sightings)."""

    SEEN = "seen"
    ACTIONED = "actioned"
    USEFUL = "useful"
    FALSE_POSITIVE = "false-positive"


def to_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=16)
def _ce_time(time: datetime) -> str:
    """A router signs every receipt of a batch at one time: it is written out once."""
    return format_time(time)


def _headers(ce_id: str, source: str, ce_type: str, time: datetime, key_id: str) -> list[tuple[str, bytes]]:
    specversion, source_value, type_value, content_type, key_id_value = _constant_values(source, ce_type, key_id)
    return [
        ("ce_specversion", specversion),
        ("ce_id", ce_id.encode("ascii")),
        ("ce_source", source_value),
        ("ce_type", type_value),
        ("ce_time", _ce_time(time).encode("ascii")),
        ("content-type", content_type),
        ("bus_keyid", key_id_value),
    ]


@functools.lru_cache(maxsize=64)
def _constant_values(source: str, ce_type: str, key_id: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The header values a signer repeats on every record (one router or member, a few types),
    encoded once; a value that is not ASCII raises and is not kept."""
    return (b"1.0", source.encode("ascii"), ce_type.encode("ascii"), JSON_CONTENT_TYPE.encode("ascii"),
            key_id.encode("ascii"))


# -- router-signed records (receipts, audit proofs) -------------------------------------------------


def sign_router_record(signer: SigningKey, router_id: str, ce_type: str, value: dict[str, Any],
                       time: datetime, *, key: bytes | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value bytes, signed headers) of a receipt or audit proof signed by a router key."""
    return sign_router_json(signer, router_id, ce_type, to_json(value), time, key=key)


def sign_router_json(signer: SigningKey, router_id: str, ce_type: str, data: bytes,
                     time: datetime, *, key: bytes | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """`sign_router_record` of a value already encoded as `to_json` encodes it."""
    if not MEMBER_ID_RE.fullmatch(router_id):
        raise ValueError(f"router id {router_id!r} is not an id like EPA-ROUTER-1")
    headers = _headers(str(uuid.uuid4()), ROUTER_SOURCE_PREFIX + router_id, ce_type, time, signer.key_id)
    return data, sign_record(signer, key, headers, data)


@dataclass(frozen=True)
class RouterRecord:
    """A receipt or audit proof whose router signature verified."""

    ce_type: str
    router_id: str
    key_id: str
    time: datetime
    value: dict[str, Any]


@dataclass(frozen=True)
class _Envelope:
    id: str
    source: str
    type: str
    time: datetime
    key_id: str


def _envelope(headers: Headers) -> _Envelope:
    raw = covered_values(headers)
    try:
        values = {k: v.decode("ascii") for k, v in raw.items()}
    except UnicodeDecodeError:
        raise SchemaError("a covered header is not ASCII") from None
    if values["ce_specversion"] != "1.0" or values["content-type"] != JSON_CONTENT_TYPE:
        raise SchemaError(f"not a JSON record of this bus (ce_specversion {quote(values['ce_specversion'])}, "
                          f"content-type {quote(values['content-type'])})")
    if not TIME_RE.fullmatch(values["ce_time"]):
        raise SchemaError(f"ce_time {quote(values['ce_time'])} is not YYYY-MM-DDTHH:MM:SS.mmmZ")
    if not KEY_ID_RE.fullmatch(values["bus_keyid"]):
        raise SchemaError(f"bus_keyid {quote(values['bus_keyid'])} is not 32 lowercase hex digits")
    try:
        ce_id = str(uuid.UUID(values["ce_id"]))
    except ValueError:
        ce_id = ""
    if ce_id != values["ce_id"]:
        raise SchemaError(f"ce_id {quote(values['ce_id'])} is not a lowercase hyphenated UUID")
    time = datetime.fromisoformat(values["ce_time"].replace("Z", "+00:00"))
    return _Envelope(ce_id, values["ce_source"], values["ce_type"], time, values["bus_keyid"])


def claimed_type(headers: Headers) -> str | None:
    """The `ce_type` a record claims (unverified): how a reader tells receipts, proofs and acks apart."""
    found = [v for k, v in headers if k == "ce_type"]
    if len(found) != 1 or found[0] is None:
        return None
    try:
        return bytes(found[0]).decode("ascii")
    except UnicodeDecodeError:
        return None


def _json(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise SchemaError("record value is null")
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise SchemaError(f"value is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise SchemaError("value is not a JSON object")
    return doc


def verify_router_record(key: bytes | None, value: bytes | None, headers: Headers, keys: RouterKeys,
                         *, expected_types: tuple[str, ...] = (RECEIPT_TYPE, PROOF_TYPE)) -> RouterRecord:
    """Check a receipt or audit proof: envelope, a router key listed and valid at ce_time, signature."""
    meta = _envelope(headers)
    if meta.type not in expected_types:
        raise SchemaError(f"ce_type {quote(meta.type)} is not one of {', '.join(expected_types)}")
    router_id = meta.source.removeprefix(ROUTER_SOURCE_PREFIX)
    if not meta.source.startswith(ROUTER_SOURCE_PREFIX) or not MEMBER_ID_RE.fullmatch(router_id):
        raise SchemaError(f"ce_source {quote(meta.source)} is not {ROUTER_SOURCE_PREFIX}<ROUTER-ID>")
    public = keys.router_key(meta.key_id, router_id, meta.time)
    if value is None:
        raise SchemaError("record value is null")
    verify_record(public, key, headers, value)
    return RouterRecord(meta.type, router_id, meta.key_id, meta.time, _json(value))


# -- acknowledgements -------------------------------------------------------------------------------


def ack_value(message_id: str, status: AckStatus, note: str | None, acked_at: datetime) -> dict[str, Any]:
    return {
        "message_id": str(uuid.UUID(message_id)),
        "status": status.value,
        "note": capped(note, NOTE_LIMIT) if note else None,
        "acked_at": format_time(acked_at),
    }


def sign_ack(signer: SigningKey, record_key: bytes, message_id: str, status: AckStatus, note: str | None,
             acked_at: datetime) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, signed headers) of an acknowledgement by `signer`'s member.

    `record_key` must be the acknowledged alert's record key, so that the acknowledgement
    lands in the alert's routing task (the router checks it there).
    """
    data = to_json(ack_value(message_id, status, note, acked_at))
    headers = _headers(str(uuid.uuid4()), SOURCE_PREFIX + signer.member, ACK_TYPE, acked_at, signer.key_id)
    return data, sign_record(signer, record_key, headers, data)


class KeyStatusResolver(Protocol):
    def authorize_key(self, key_id: str, producer: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class VerifiedAck:
    ack_id: str
    member: str
    key_id: str
    time: datetime
    message_id: str
    status: AckStatus
    note: str | None


def verify_ack(key: bytes | None, value: bytes | None, headers: Headers, resolver: KeyResolver) -> VerifiedAck:
    """Check an acknowledgement as an alert is checked: envelope, key owner, signature, key status
    at ce_time, then the value. Verdicts after the signature carry the member (`producer`)."""
    meta = _envelope(headers)
    if meta.type != ACK_TYPE:
        raise SchemaError(f"ce_type {quote(meta.type)} is not {ACK_TYPE}")
    member = meta.source.removeprefix(SOURCE_PREFIX)
    if not meta.source.startswith(SOURCE_PREFIX) or not MEMBER_ID_RE.fullmatch(member):
        raise SchemaError(f"ce_source {quote(meta.source)} is not {SOURCE_PREFIX}<MEMBER-ID>")
    if value is None:
        raise SchemaError("record value is null: an acknowledgement carries a JSON value")
    public = resolver.lookup(meta.key_id, member)
    verify_record(public, key, headers, value)
    with attributed_to(member):
        status_check = getattr(resolver, "authorize_key", None)
        if status_check is not None:  # a plain Keyring knows no validity periods
            status_check(meta.key_id, member, meta.time)
        doc = _json(value)
        try:
            message_id = str(uuid.UUID(str(doc["message_id"])))
            status = AckStatus(doc["status"])
            note = doc.get("note")
            acked_at = str(doc["acked_at"])
        except (KeyError, ValueError) as exc:
            raise SchemaError(
                f"acknowledgement value is not valid ({type(exc).__name__}: {quote(str(exc))})") from None
        if acked_at != format_time(meta.time):
            raise SignatureError(
                f"header ce_time ({format_time(meta.time)}) disagrees with acked_at ({quote(acked_at)})")
        if note is not None and (not isinstance(note, str) or len(note) > NOTE_LIMIT + 40):
            raise SchemaError(f"acknowledgement note must be text of at most {NOTE_LIMIT} characters")
    return VerifiedAck(meta.id, member, meta.key_id, meta.time, message_id, status, note)


def not_received(member: str, message_id: str) -> VerificationError:
    return VerificationError(
        f"{member} acknowledged alert {message_id}, which this router never delivered to {member} "
        "(or not within the replay window)", RejectReason.NOT_RECEIVED, producer=member)
