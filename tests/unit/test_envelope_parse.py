"""The envelope's parse side: its shortcuts (a pattern for `ce_id`, the producer and type checked
once per combination) accept and refuse exactly what the plain rule does, with the same message."""

from __future__ import annotations

import uuid

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


def _canonical_uuid(text: str) -> bool:
    """The plain `ce_id` rule: the text is what `str(uuid.UUID(...))` writes for it."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _refused(message: str) -> str:
    """How a refusal reads (`str` of the SchemaError: reason code, then the message)."""
    return str(SchemaError(message))


def _raw(ce_id: str = "01890a5d-ac96-774b-bcce-b302099a8057", source: str = SOURCE_PREFIX + "NL-CUSTOMS",
         ce_type: str = TYPE_PREFIX + "suspicious-container" + TYPE_SUFFIX, time: str = "2026-03-01T08:00:00.000Z",
         key_id: str = "0" * 32) -> dict[str, bytes]:
    return {"ce_specversion": SPECVERSION.encode(), "ce_id": ce_id.encode(), "ce_source": source.encode(),
            "ce_type": ce_type.encode(), "ce_time": time.encode(), "content-type": CONTENT_TYPE.encode(),
            KEY_ID_HEADER: key_id.encode()}


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


@settings(max_examples=300, deadline=None)
@given(ce_id=_ids)
def test_ce_id_is_accepted_exactly_when_it_is_the_canonical_uuid_text(ce_id: str) -> None:
    outcome = _outcome(parse_covered, _raw(ce_id=ce_id))
    if _canonical_uuid(ce_id):
        assert isinstance(outcome, CloudEventMeta) and outcome.id == ce_id
    elif ce_id.isascii():
        assert outcome == _refused(f"ce_id {quote(ce_id)} is not a lowercase hyphenated UUID")
    else:
        assert outcome == _refused(f"header ce_id is not ASCII: {quote(ce_id.encode())}")


@settings(max_examples=300, deadline=None)
@given(source=_sources, ce_type=_types, time=st.sampled_from(["2026-03-01T08:00:00.000Z", "2026-02-30T08:00:00.000Z"]),
       key_id=st.sampled_from(["0" * 32, "A" * 32]))
def test_the_producer_and_type_check_is_the_same_from_the_cache(source: str, ce_type: str, time: str,
                                                                 key_id: str) -> None:
    raw = _raw(source=source, ce_type=ce_type, time=time, key_id=key_id)
    first = _outcome(parse_covered, raw)
    assert _outcome(parse_covered, raw) == first  # the second time from the cache (or unchecked, if long)
    producer = source.removeprefix(SOURCE_PREFIX)
    if not source.startswith(SOURCE_PREFIX) or not MEMBER_ID_RE.fullmatch(producer):
        assert first == _refused(f"ce_source {quote(source)} is not {SOURCE_PREFIX}<MEMBER-ID>")
    elif claimed_alert_type(ce_type) is None:
        assert first == _refused(f"ce_type {quote(ce_type)} is not {TYPE_PREFIX}<alert-type>{TYPE_SUFFIX}")
    elif isinstance(first, CloudEventMeta):
        assert (first.producer, first.alert_type) == (producer, claimed_alert_type(ce_type))
        assert TIME_RE.fullmatch(time) and KEY_ID_RE.fullmatch(key_id)
    else:  # a later header's error: the origin passed
        assert isinstance(first, str) and first.startswith((_refused("ce_time"), _refused(KEY_ID_HEADER)))
