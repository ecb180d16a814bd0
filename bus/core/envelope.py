"""CloudEvents 1.0 Kafka protocol binding, binary content mode.

The event attributes travel as `ce_*` headers so that generic CloudEvents
tooling can route and filter without decoding Avro; the value is the Avro
Single Object Encoding of the alert. Headers are kafka-python's
`list[tuple[str, bytes]]`.

Parsing is strict on purpose: every header value has exactly one accepted
spelling, so the signed bytes and their meaning cannot drift apart.
Missing or repeated headers are `SignatureError` (the signed set is
ambiguous); present but null, malformed or unsupported values are
`SchemaError` (the record is not in this wire format). Every pattern is
matched against the whole value (`fullmatch`): `^...$` would let a trailing
newline through. Details quote untrusted values bounded (`bus.errors.quote`).
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from bus.core.models import MEMBER_ID_RE
from bus.core.signing import Headers, covered_values
from bus.errors import BusError, SchemaError, quote

SPECVERSION = "1.0"
CONTENT_TYPE = "application/avro"
SOURCE_PREFIX = "urn:epa:member:"
TYPE_PREFIX = "eu.epa.alert."
TYPE_SUFFIX = ".v1"
KEY_ID_HEADER = "bus_keyid"

ALERT_TYPE_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
KEY_ID_RE = re.compile(r"[0-9a-f]{32}")
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


@dataclass(frozen=True)
class CloudEventMeta:
    """The envelope as claimed by the headers (authentic only once verified)."""

    id: str
    producer: str
    alert_type: str
    time: datetime
    key_id: str

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.producer

    @property
    def type(self) -> str:
        return ce_type(self.alert_type)


def ce_type(alert_type: str) -> str:
    return f"{TYPE_PREFIX}{alert_type}{TYPE_SUFFIX}"


def claimed_alert_type(ce_type_value: str) -> str | None:
    """The alert type a `ce_type` header claims (unverified), or None if it is not ours."""
    alert_type = ce_type_value.removeprefix(TYPE_PREFIX).removesuffix(TYPE_SUFFIX)
    if ce_type_value != ce_type(alert_type) or not ALERT_TYPE_RE.fullmatch(alert_type):
        return None
    return alert_type


def format_time(when: datetime) -> str:
    """RFC 3339, UTC, milliseconds, `Z`: the only spelling `ce_time` accepts."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise BusError(f"time {when.isoformat()} has no time zone")
    utc = when if when.tzinfo is UTC else when.astimezone(UTC)
    if utc.year >= 1000:  # %-formatting is cheaper than strftime and, from year 1000 on, the same
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond // 1000)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def build_headers(
    *, message_id: uuid.UUID | str, producer: str, alert_type: str, time: datetime, key_id: str
) -> list[tuple[str, bytes]]:
    """The CloudEvents headers plus `bus_keyid`, in signing order (no signature yet)."""
    source, type_, key_id_value = _constant_values(producer, alert_type, key_id)
    # A UUID's str() is already the canonical lowercase hyphenated form; a string is parsed.
    ce_id = str(message_id) if isinstance(message_id, uuid.UUID) else str(uuid.UUID(message_id))
    return [
        ("ce_specversion", _SPECVERSION_VALUE),
        ("ce_id", ce_id.encode("ascii")),
        ("ce_source", source),
        ("ce_type", type_),
        ("ce_time", format_time(time).encode("ascii")),
        ("content-type", _CONTENT_TYPE_VALUE),
        (KEY_ID_HEADER, key_id_value),
    ]


_SPECVERSION_VALUE = SPECVERSION.encode("ascii")
_CONTENT_TYPE_VALUE = CONTENT_TYPE.encode("ascii")


@functools.lru_cache(maxsize=256)
def _constant_values(producer: str, alert_type: str, key_id: str) -> tuple[bytes, bytes, bytes]:
    """The checked `ce_source`, `ce_type` and `bus_keyid` values: a publisher sends many alerts
    with one producer, key and a few types, so each combination is checked and encoded once
    (a failed check raises and is not cached)."""
    if not MEMBER_ID_RE.fullmatch(producer):
        raise BusError(f"producer {producer!r} is not a member id")
    if not ALERT_TYPE_RE.fullmatch(alert_type):
        raise BusError(f"alert type {alert_type!r} is not a valid type name")
    if not KEY_ID_RE.fullmatch(key_id):
        raise BusError(f"key id {key_id!r} is not 32 lowercase hex digits")
    return ((SOURCE_PREFIX + producer).encode("ascii"), ce_type(alert_type).encode("ascii"),
            key_id.encode("ascii"))


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise SchemaError(f"header {name} is not ASCII: {quote(raw)}") from None


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""What `str(uuid.UUID(...))` writes: the only `ce_id` spelling accepted."""
_CACHED_ORIGIN_CHARS = 200
"""Longer `ce_source` + `ce_type` values (unverified input) are checked each time, never kept."""


def _check_origin(source: str, type_: str) -> tuple[str, str]:
    """The producer and alert type that `ce_source` and `ce_type` claim, or the first one's error."""
    producer = source.removeprefix(SOURCE_PREFIX)
    if not source.startswith(SOURCE_PREFIX) or not MEMBER_ID_RE.fullmatch(producer):
        raise SchemaError(f"ce_source {quote(source)} is not {SOURCE_PREFIX}<MEMBER-ID>")
    alert_type = claimed_alert_type(type_)
    if alert_type is None:
        raise SchemaError(f"ce_type {quote(type_)} is not {TYPE_PREFIX}<alert-type>{TYPE_SUFFIX}")
    return producer, alert_type


_claimed_origin = functools.lru_cache(maxsize=256)(_check_origin)
"""`_check_origin`, once per combination: a router reads many alerts from few producers and
types (a failed check raises and is not cached), as `_constant_values` does when building."""


def parse_headers(headers: Headers) -> CloudEventMeta:
    """Validate the envelope headers and return what they claim."""
    return parse_covered(covered_values(headers))


def parse_covered(raw: dict[str, bytes]) -> CloudEventMeta:
    """`parse_headers` from the covered values `covered_values` already extracted."""
    values = {name: _text(name, value) for name, value in raw.items()}

    if values["ce_specversion"] != SPECVERSION:
        raise SchemaError(f"unsupported ce_specversion {quote(values['ce_specversion'])}")
    if values["content-type"] != CONTENT_TYPE:
        raise SchemaError(f"unsupported content-type {quote(values['content-type'])}")

    ce_id = values["ce_id"]
    if not _UUID_RE.fullmatch(ce_id):
        raise SchemaError(f"ce_id {quote(ce_id)} is not a lowercase hyphenated UUID")

    source, type_ = values["ce_source"], values["ce_type"]
    if len(source) + len(type_) <= _CACHED_ORIGIN_CHARS:
        producer, alert_type = _claimed_origin(source, type_)
    else:
        producer, alert_type = _check_origin(source, type_)

    text = values["ce_time"]
    try:
        if not TIME_RE.fullmatch(text):
            raise ValueError
        time = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaError(
            f"ce_time {quote(text)} is not a real UTC time written YYYY-MM-DDTHH:MM:SS.mmmZ"
        ) from None

    key_id = values[KEY_ID_HEADER]
    if not KEY_ID_RE.fullmatch(key_id):
        raise SchemaError(f"{KEY_ID_HEADER} {quote(key_id)} is not 32 lowercase hex digits")

    return CloudEventMeta(
        id=ce_id, producer=producer, alert_type=alert_type, time=time, key_id=key_id
    )
