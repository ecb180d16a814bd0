"""The envelope's parse side: its shortcuts (a pattern for `ce_id`, the producer and type checked
once per combination) accept and refuse exactly what the plain rule does, with the same message."""

from __future__ import annotations

import uuid
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.core.envelope import (
    CONTENT_TYPE,
    KEY_ID_HEADER,
    KEY_ID_RE,
    SOURCE_PREFIX,
    SPECVERSION,
    TIME_RE,
    TYPE_PREFIX,
    TYPE_SUFFIX,
    CloudEventMeta,
    claimed_alert_type,
    parse_covered,
)
from bus.core.models import MEMBER_ID_RE
from bus.errors import SchemaError, quote


def _reference(raw: dict[str, bytes]) -> CloudEventMeta:
    """The rule written out plainly: each value ASCII, then each header's check in order."""
    values = {}
    for name, value in raw.items():
        try:
            values[name] = value.decode("ascii")
        except UnicodeDecodeError:
            raise SchemaError(f"header {name} is not ASCII: {quote(value)}") from None
    if values["ce_specversion"] != SPECVERSION:
        raise SchemaError(f"unsupported ce_specversion {quote(values['ce_specversion'])}")
    if values["content-type"] != CONTENT_TYPE:
        raise SchemaError(f"unsupported content-type {quote(values['content-type'])}")
    ce_id = values["ce_id"]
    try:
        canonical: str | None = str(uuid.UUID(ce_id))
    except ValueError:
        canonical = None
    if canonical != ce_id:
        raise SchemaError(f"ce_id {quote(ce_id)} is not a lowercase hyphenated UUID")
    source = values["ce_source"]
    producer = source.removeprefix(SOURCE_PREFIX)
    if not source.startswith(SOURCE_PREFIX) or not MEMBER_ID_RE.fullmatch(producer):
        raise SchemaError(f"ce_source {quote(source)} is not {SOURCE_PREFIX}<MEMBER-ID>")
    alert_type = claimed_alert_type(values["ce_type"])
    if alert_type is None:
        raise SchemaError(f"ce_type {quote(values['ce_type'])} is not {TYPE_PREFIX}<alert-type>{TYPE_SUFFIX}")
    text = values["ce_time"]
    try:
        if not TIME_RE.fullmatch(text):
            raise ValueError
        time = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaError(f"ce_time {quote(text)} is not a real UTC time written YYYY-MM-DDTHH:MM:SS.mmmZ") from None
    key_id = values[KEY_ID_HEADER]
    if not KEY_ID_RE.fullmatch(key_id):
        raise SchemaError(f"{KEY_ID_HEADER} {quote(key_id)} is not 32 lowercase hex digits")
    return CloudEventMeta(id=ce_id, producer=producer, alert_type=alert_type, time=time, key_id=key_id)


def _outcome(parse: object, raw: dict[str, bytes]) -> object:
    try:
        return parse(raw)  # type: ignore[operator]
    except SchemaError as exc:
        return str(exc)


_ids = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: u.hex),
                 st.uuids().map(lambda u: "{" + str(u) + "}"), st.uuids().map(lambda u: f"urn:uuid:{u}"),
                 st.text(alphabet="0123456789abcdef-_ ", max_size=40), st.just("é"))
_sources = st.one_of(st.sampled_from(["NL-CUSTOMS", "BE-CUSTOMS", "nl-customs", "NL--X", ""])
                     .map(SOURCE_PREFIX.__add__),
                     st.text(alphabet="urn:epamb-AZ09", max_size=30),
                     st.just(SOURCE_PREFIX + "A" * 300))
_types = st.one_of(st.sampled_from(["suspicious-container", "operation-notice", "Bad", "a--b"])
                   .map(lambda t: TYPE_PREFIX + t + TYPE_SUFFIX), st.text(alphabet="eu.plrtv1-a", max_size=30))


@settings(max_examples=400, deadline=None)
@given(ce_id=_ids, source=_sources, ce_type=_types,
       time=st.sampled_from(["2026-03-01T08:00:00.000Z", "2026-02-30T08:00:00.000Z", "2026-03-01T08:00:00Z"]),
       key_id=st.sampled_from(["0" * 32, "A" * 32, "0" * 31]))
def test_parse_covered_agrees_with_the_plain_rule(ce_id: str, source: str, ce_type: str, time: str,
                                                  key_id: str) -> None:
    raw = {"ce_specversion": b"1.0", "ce_id": ce_id.encode(), "ce_source": source.encode(),
           "ce_type": ce_type.encode(), "ce_time": time.encode(), "content-type": CONTENT_TYPE.encode(),
           KEY_ID_HEADER: key_id.encode()}
    assert _outcome(parse_covered, raw) == _outcome(_reference, raw)
    assert _outcome(parse_covered, raw) == _outcome(_reference, raw)  # a second time: from the cache
