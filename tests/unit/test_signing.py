"""The record signature: layout, formats 1.1 and 1.0, tamper detection, header ambiguity.

The documented test vectors are checked in test_wire_format_doc.py, parsed from the document."""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bus.core.envelope import build_headers, format_time, parse_headers
from bus.core.keys import SigningKey
from bus.core.signing import (
    COVERED_HEADERS,
    DOMAIN,
    DOMAINS,
    SIGNATURE_HEADER,
    V1_0_ACCEPTED_UNTIL,
    WireVersion,
    require_supported,
    sign_record,
    signature_of,
    signing_input,
    verify_record,
)
from bus.errors import BusError, RejectReason, SchemaError, SignatureError, VerificationError

SIGNER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))


def headers_for(signer: SigningKey = SIGNER) -> list[tuple[str, bytes]]:
    return build_headers(
        message_id="01890a5d-ac96-774b-bcce-b302099a8057",
        producer=signer.member,
        alert_type="suspicious-container",
        time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        key_id=signer.key_id,
    )


KEY = b"MSCU1234566"
VALUE = b"\xc3\x01" + bytes(8) + b"\x06foo"
SIGNED = sign_record(SIGNER, KEY, headers_for(), VALUE)


def replace(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in headers]


def sign_v1_0(signer: SigningKey, key: bytes | None, headers: list[tuple[str, bytes]],
              value: bytes) -> list[tuple[str, bytes]]:
    """A record as a 1.0 producer wrote it: old domain, raw 64-byte bus_sig."""
    raw = signer.sign(signing_input(key, headers, value, WireVersion.V1_0))
    return [*headers, (SIGNATURE_HEADER, raw)]


def test_round_trip_writes_format_1_1() -> None:
    assert verify_record(SIGNER.public, KEY, SIGNED, VALUE) is WireVersion.V1_1
    name, sig = SIGNED[-1]
    assert name == SIGNATURE_HEADER and len(sig) == 86
    assert re.fullmatch(rb"[A-Za-z0-9_-]{86}", sig)  # printable ASCII, no padding
    raw = base64.urlsafe_b64decode(sig + b"==")
    assert SIGNER.public.verify(raw, DOMAINS[WireVersion.V1_1] + signing_input(KEY, SIGNED, VALUE)[len(DOMAIN):])
    assert DOMAIN == b"EPA-BUS-SIG/1.1\x00"


def test_every_header_value_the_bus_writes_is_printable_ascii() -> None:
    for _, value in SIGNED:
        assert all(0x20 < b < 0x7F for b in value), value


def test_format_1_0_records_still_verify() -> None:
    old = sign_v1_0(SIGNER, KEY, headers_for(), VALUE)
    assert len(old[-1][1]) == 64
    assert verify_record(SIGNER.public, KEY, old, VALUE) is WireVersion.V1_0
    assert signature_of(old).version is WireVersion.V1_0


def test_formats_do_not_verify_for_each_other() -> None:
    """Same key, same record: the domains differ, so a signature moved to the other format fails."""
    old_raw = sign_v1_0(SIGNER, KEY, headers_for(), VALUE)[-1][1]
    new_raw = base64.urlsafe_b64decode(SIGNED[-1][1] + b"==")
    as_new = [*headers_for(), (SIGNATURE_HEADER, base64.urlsafe_b64encode(old_raw).rstrip(b"="))]
    as_old = [*headers_for(), (SIGNATURE_HEADER, new_raw)]
    for headers in (as_new, as_old):
        with pytest.raises(SignatureError, match="does not verify"):
            verify_record(SIGNER.public, KEY, headers, VALUE)


def test_the_transition_window() -> None:
    before = V1_0_ACCEPTED_UNTIL - timedelta(milliseconds=1)
    require_supported(WireVersion.V1_0, before)
    require_supported(WireVersion.V1_1, V1_0_ACCEPTED_UNTIL + timedelta(days=999))
    for created in (V1_0_ACCEPTED_UNTIL, V1_0_ACCEPTED_UNTIL + timedelta(days=1)):
        with pytest.raises(VerificationError) as info:
            require_supported(WireVersion.V1_0, created)
        assert info.value.reason is RejectReason.UNSUPPORTED_FORMAT
    earlier = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(VerificationError):
        require_supported(WireVersion.V1_0, before, accept_v1_0_until=earlier)


def test_layout_is_length_prefixed_parts() -> None:
    data = signing_input(KEY, SIGNED, VALUE)
    assert data.startswith(DOMAIN)
    pos, parts = len(DOMAIN), []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        parts.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(data)
    values = dict(SIGNED)
    expected = [KEY]
    for name in COVERED_HEADERS:
        expected += [name.encode(), values[name]]
    assert parts == [*expected, VALUE]


def test_wrong_key_fails() -> None:
    with pytest.raises(SignatureError):
        verify_record(OTHER.public, KEY, SIGNED, VALUE)


def test_key_tampering_fails() -> None:
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, b"MSCU1234567", SIGNED, VALUE)


@pytest.mark.parametrize("name", COVERED_HEADERS)
def test_each_covered_header_is_covered(name: str) -> None:
    tampered = replace(SIGNED, name, dict(SIGNED)[name] + b"x")
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, KEY, tampered, VALUE)


def test_value_tampering_fails() -> None:
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, KEY, SIGNED, VALUE + b"\x00")


def test_null_and_empty_key_are_distinct() -> None:
    assert signing_input(None, SIGNED, VALUE) != signing_input(b"", SIGNED, VALUE)
    signed_null = sign_record(SIGNER, None, headers_for(), VALUE)
    verify_record(SIGNER.public, None, signed_null, VALUE)
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, b"", signed_null, VALUE)
    signed_empty = sign_record(SIGNER, b"", headers_for(), VALUE)
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, None, signed_empty, VALUE)


def test_parts_cannot_be_shifted_between_fields() -> None:
    # moving a byte from the key to the value must change the input
    assert signing_input(b"ab", SIGNED, b"c") != signing_input(b"a", SIGNED, b"bc")


@pytest.mark.parametrize("name", COVERED_HEADERS)
def test_duplicated_covered_header_fails_even_if_identical(name: str) -> None:
    value = dict(SIGNED)[name]
    for duplicated in ([(name, value), *SIGNED], [*SIGNED, (name, value)]):
        with pytest.raises(SignatureError, match="more than once"):
            verify_record(SIGNER.public, KEY, duplicated, VALUE)
        with pytest.raises(SignatureError):
            signing_input(KEY, duplicated, VALUE)


@pytest.mark.parametrize("name", COVERED_HEADERS)
def test_missing_covered_header_fails(name: str) -> None:
    stripped = [(n, v) for n, v in SIGNED if n != name]
    with pytest.raises(SignatureError, match="missing"):
        verify_record(SIGNER.public, KEY, stripped, VALUE)


@pytest.mark.parametrize("name", COVERED_HEADERS)
def test_covered_header_with_a_null_value_is_bad_schema(name: str) -> None:
    headers: list[tuple[str, bytes | None]] = [(n, None if n == name else v) for n, v in SIGNED]
    with pytest.raises(SchemaError, match=f"covered header '{name}' has a null value"):
        verify_record(SIGNER.public, KEY, headers, VALUE)
    with pytest.raises(SchemaError):
        parse_headers(headers)


def test_counting_comes_before_null_values() -> None:
    """A repeated header is reported even if another covered header is null."""
    headers: list[tuple[str, bytes | None]] = [(n, None if n == "ce_id" else v) for n, v in SIGNED]
    with pytest.raises(SignatureError, match="more than once"):
        parse_headers([*headers, ("ce_type", dict(SIGNED)["ce_type"])])


def test_signature_header_exactly_once_and_of_a_known_shape() -> None:
    unsigned = SIGNED[:-1]
    sig = SIGNED[-1][1]
    with pytest.raises(SignatureError, match="no bus_sig"):
        verify_record(SIGNER.public, KEY, unsigned, VALUE)
    with pytest.raises(SignatureError, match="2 times"):
        verify_record(SIGNER.public, KEY, [*SIGNED, SIGNED[-1]], VALUE)
    with pytest.raises(SignatureError, match="null value"):
        verify_record(SIGNER.public, KEY, [*unsigned, (SIGNATURE_HEADER, None)], VALUE)
    for bad in (sig[:85], sig + b"==", sig[:63], b"", base64.b64encode(base64.urlsafe_b64decode(sig + b"=="))):
        with pytest.raises(SignatureError, match="must be 86 base64url characters"):
            verify_record(SIGNER.public, KEY, [*unsigned, (SIGNATURE_HEADER, bad)], VALUE)
    with pytest.raises(SignatureError, match="already"):
        sign_record(SIGNER, KEY, SIGNED, VALUE)


def test_only_the_canonical_base64url_spelling_is_accepted() -> None:
    """86 characters carry 4 spare bits; a set spare bit is a second spelling of the same signature."""
    sig = SIGNED[-1][1]
    last = sig[-1:]
    assert last in b"AQgw"
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = bytes([alphabet[alphabet.index(last) + 1]])  # same 2 signature bits, a spare bit set
    assert base64.urlsafe_b64decode(sig[:-1] + sibling + b"==") == base64.urlsafe_b64decode(sig + b"==")
    with pytest.raises(SignatureError, match="not canonical"):
        verify_record(SIGNER.public, KEY, [*SIGNED[:-1], (SIGNATURE_HEADER, sig[:-1] + sibling)], VALUE)
    with pytest.raises(SignatureError, match="not canonical"):  # standard base64 alphabet
        verify_record(SIGNER.public, KEY, [*SIGNED[:-1], (SIGNATURE_HEADER, sig[:-2] + b"+A")], VALUE)


def test_uncovered_headers_and_their_order_do_not_matter() -> None:
    reordered = [("traceparent", b"00-abc"), *reversed(SIGNED), ("x-router-hop", b"1")]
    verify_record(SIGNER.public, KEY, reordered, VALUE)


def test_case_variant_is_not_the_covered_header() -> None:
    renamed = [("CE_ID" if n == "ce_id" else n, v) for n, v in SIGNED]
    with pytest.raises(SignatureError, match="missing"):
        verify_record(SIGNER.public, KEY, renamed, VALUE)


# ---- the property: any single bit flip anywhere signed breaks verification ----

PARTS = ["key", "value", "signature", *(f"header:{n}" for n in COVERED_HEADERS),
         *(f"name:{n}" for n in COVERED_HEADERS)]


def flip(data: bytes, index: int, bit: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


@given(
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.binary(max_size=200),
    part=st.sampled_from(PARTS),
    index=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_bit_flip_fails(
    key: bytes | None, value: bytes, part: str, index: int, bit: int
) -> None:
    headers = sign_record(SIGNER, key, headers_for(), value)
    verify_record(SIGNER.public, key, headers, value)
    if part == "key":
        key = flip(key, index, bit) if key else b"\x00"  # null/empty -> one byte
    elif part == "value":
        value = flip(value, index, bit) if value else b"\x00"
    elif part == "signature":
        headers = replace(headers, SIGNATURE_HEADER, flip(headers[-1][1], index, bit))
    elif part.startswith("header:"):
        name = part.split(":", 1)[1]
        headers = replace(headers, name, flip(dict(headers)[name], index, bit))
    else:
        name = part.split(":", 1)[1]
        new = flip(name.encode(), index, bit).decode("latin-1")
        headers = [(new if n == name else n, v) for n, v in headers]
    with pytest.raises(SignatureError):
        verify_record(SIGNER.public, key, headers, value)


@given(key=st.one_of(st.none(), st.binary(max_size=40)), value=st.binary(max_size=200))
def test_any_record_round_trips(key: bytes | None, value: bytes) -> None:
    verify_record(SIGNER.public, key, sign_record(SIGNER, key, headers_for(), value), value)


# ---- envelope headers ----


def test_parse_headers_returns_the_claims() -> None:
    meta = parse_headers(SIGNED)
    assert meta.id == "01890a5d-ac96-774b-bcce-b302099a8057"
    assert meta.producer == "NL-CUSTOMS" and meta.source == "urn:epa:member:NL-CUSTOMS"
    assert meta.alert_type == "suspicious-container"
    assert meta.type == "eu.epa.alert.suspicious-container.v1"
    assert meta.time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert meta.key_id == SIGNER.key_id


def test_time_format_is_rfc3339_utc_millis() -> None:
    from datetime import timedelta, timezone

    cet = timezone(timedelta(hours=2))
    when = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=cet)
    assert format_time(when) == "2024-05-01T12:00:00.123Z"
    with pytest.raises(BusError):
        format_time(datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ce_specversion", b"0.3"),
        ("content-type", b"application/json"),
        ("ce_id", b"not-a-uuid"),
        ("ce_id", b"01890A5D-AC96-774B-BCCE-B302099A8057"),
        ("ce_source", b"NL-CUSTOMS"),
        ("ce_source", b"urn:epa:member:nl-customs"),
        ("ce_type", b"eu.epa.alert.suspicious-container.v2"),
        ("ce_type", b"com.example.suspicious-container.v1"),
        ("ce_time", b"2024-05-01T12:00:00Z"),
        ("ce_time", b"2024-05-01T12:00:00.000+00:00"),
        ("ce_time", b"2024-13-01T12:00:00.000Z"),
        ("bus_keyid", b"ABCDEF"),
        ("ce_source", "urn:epa:member:NL-CUSTÖMS".encode()),
        # every pattern covers the whole value: `$` would let a trailing newline through
        ("ce_source", b"urn:epa:member:NL-CUSTOMS\n"),
        ("ce_type", b"eu.epa.alert.suspicious-container.v1\n"),
        ("bus_keyid", SIGNER.key_id.encode() + b"\n"),
        ("ce_time", b"2024-05-01T12:00:00.123Z\n"),
        ("ce_id", b"01890a5d-ac96-774b-bcce-b302099a8057\n"),
        ("ce_specversion", b"1.0\n"),
        # only real instants: no Feb 30, no leap second, no hour 24
        ("ce_time", b"2024-02-30T12:00:00.000Z"),
        ("ce_time", b"2023-02-29T12:00:00.000Z"),
        ("ce_time", b"2016-12-31T23:59:60.000Z"),
        ("ce_time", b"2024-05-01T24:00:00.000Z"),
        ("ce_time", b"0000-01-01T00:00:00.000Z"),
        ("ce_time", "2024-05-01T12:00:00.12\u0663Z".encode()),
    ],
)
def test_malformed_header_values_are_bad_schema(name: str, value: bytes) -> None:
    with pytest.raises(SchemaError):
        parse_headers(replace(SIGNED, name, value))


def test_missing_or_duplicated_envelope_headers_are_bad_signature() -> None:
    with pytest.raises(SignatureError):
        parse_headers([(n, v) for n, v in SIGNED if n != "ce_type"])
    with pytest.raises(SignatureError):
        parse_headers([*SIGNED, ("ce_source", b"urn:epa:member:BE-POLICE")])


def test_a_leap_day_is_a_real_date() -> None:
    meta = parse_headers(replace(SIGNED, "ce_time", b"2024-02-29T23:59:59.999Z"))
    assert meta.time == datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)


def test_details_quote_hostile_values_bounded() -> None:
    """Details reach audit entries and dead-letter headers: a 500 KB value stays a short message."""
    huge = b"A" * 500_000
    for name in ("ce_id", "ce_source", "ce_type", "ce_time", "bus_keyid", "ce_specversion", "content-type"):
        with pytest.raises(SchemaError) as info:
            parse_headers(replace(SIGNED, name, huge))
        assert len(info.value.detail) < 250, name
        assert "...(500000 bytes)" in info.value.detail
    with pytest.raises(SchemaError) as info:
        parse_headers(replace(SIGNED, "ce_source", b"\xff" * 500_000))
    assert len(str(info.value)) < 400


def test_any_verification_detail_is_bounded() -> None:
    error = VerificationError("x" * 50_000, RejectReason.BAD_SCHEMA)
    assert len(error.detail) < 1100 and error.detail.endswith("...(50000 characters)")
