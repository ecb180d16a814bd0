"""The record signature: layout, tamper detection, header ambiguity, test vector."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from bus.core.envelope import build_headers, format_time, parse_headers
from bus.core.keys import SigningKey
from bus.core.signing import (
    COVERED_HEADERS,
    DOMAIN,
    SIGNATURE_HEADER,
    sign_record,
    signing_input,
    verify_record,
)
from bus.errors import BusError, SchemaError, SignatureError

REPO = Path(__file__).resolve().parents[2]
VECTOR = json.loads((Path(__file__).parent / "vectors" / "signing-v1.json").read_text())
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


KEY = b"MSCU1234565"
VALUE = b"\xc3\x01" + bytes(8) + b"\x06foo"
SIGNED = sign_record(SIGNER, KEY, headers_for(), VALUE)


def replace(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in headers]


def test_round_trip() -> None:
    verify_record(SIGNER.public, KEY, SIGNED, VALUE)
    assert SIGNED[-1][0] == SIGNATURE_HEADER and len(SIGNED[-1][1]) == 64


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
        verify_record(SIGNER.public, b"MSCU1234566", SIGNED, VALUE)


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


def test_covered_header_without_value_fails() -> None:
    headers: list[tuple[str, bytes | None]] = [*replace(SIGNED, "ce_id", b"")]
    headers = [(n, None if n == "ce_id" else v) for n, v in headers]
    with pytest.raises(SignatureError, match="no value"):
        verify_record(SIGNER.public, KEY, headers, VALUE)


def test_signature_header_exactly_once_and_64_bytes() -> None:
    unsigned = SIGNED[:-1]
    with pytest.raises(SignatureError, match="no bus_sig"):
        verify_record(SIGNER.public, KEY, unsigned, VALUE)
    with pytest.raises(SignatureError, match="2 times"):
        verify_record(SIGNER.public, KEY, [*SIGNED, SIGNED[-1]], VALUE)
    with pytest.raises(SignatureError, match="64 bytes"):
        short = [*unsigned, (SIGNATURE_HEADER, SIGNED[-1][1][:63])]
        verify_record(SIGNER.public, KEY, short, VALUE)
    with pytest.raises(SignatureError, match="already"):
        sign_record(SIGNER, KEY, SIGNED, VALUE)


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


# ---- the documented test vector ----


def test_vector_is_reproduced() -> None:
    seed = bytes.fromhex(VECTOR["seed_hex"])
    signer = SigningKey(VECTOR["member"], Ed25519PrivateKey.from_private_bytes(seed))
    raw_pub = signer.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert raw_pub.hex() == VECTOR["public_key_hex"]
    assert signer.key_id == VECTOR["key_id"]
    headers = [(n, v.encode()) for n, v in VECTOR["headers"]]
    assert headers == build_headers(
        message_id=dict(VECTOR["headers"])["ce_id"],
        producer=VECTOR["member"],
        alert_type="suspicious-container",
        time=datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        key_id=signer.key_id,
    )
    key, value = bytes.fromhex(VECTOR["record_key_hex"]), bytes.fromhex(VECTOR["value_hex"])
    data = signing_input(key, headers, value)
    assert data.hex() == VECTOR["signing_input_hex"]

    # an independent re-implementation of the documented layout
    def part(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    manual = b"EPA-BUS-SIG/1\x00" + part(key)
    manual += b"".join(part(n.encode()) + part(v) for n, v in headers)
    manual += part(value)
    assert manual == data

    signed = sign_record(signer, key, headers, value)
    assert signed[-1][1].hex() == VECTOR["signature_hex"]  # Ed25519 is deterministic
    Ed25519PublicKey.from_public_bytes(raw_pub).verify(bytes.fromhex(VECTOR["signature_hex"]), data)


def test_wire_format_doc_contains_the_vector() -> None:
    doc = "".join((REPO / "docs" / "wire-format.md").read_text().split())
    for field in ("seed_hex", "public_key_hex", "key_id", "value_hex", "signing_input_hex",
                  "signature_hex"):
        assert VECTOR[field] in doc, f"docs/wire-format.md lacks the vector's {field}"
    size = len(bytes.fromhex(VECTOR["signing_input_hex"]))
    assert f"Signinginput({size}bytes)" in doc
