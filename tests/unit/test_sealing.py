"""Alert -> signed record -> verified alert, and every way a record is refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.core.envelope import build_headers
from bus.core.keyring import Keyring
from bus.core.keys import PublicKey, SigningKey
from bus.core.models import AlertType, BaseAlert, new_message_id, parse_alert
from bus.core.sealing import SealedRecord, VerifiedAlert, alert_topic, seal, unseal
from bus.core.signing import COVERED_HEADERS, SIGNATURE_HEADER, sign_record
from bus.errors import (
    BusError,
    RejectReason,
    SchemaError,
    SignatureError,
    UnknownKeyError,
    VerificationError,
)
from tests.helpers import CODES, SCHEMAS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "alerts").glob("*.json"))
SIGNER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
STRANGER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))


def keyring(*entries: tuple[str, PublicKey]) -> Keyring:
    ring = Keyring()
    for member, key in entries:
        ring.add(member, key)
    return ring


RING = keyring(("NL-CUSTOMS", SIGNER.public))


def load_example(path: Path) -> BaseAlert:
    return parse_alert(json.loads(path.read_text()), empact_codes=CODES, producer="NL-CUSTOMS")


def container_alert(**body: Any) -> BaseAlert:
    data = {
        "header": {
            "alert_type": "suspicious-container", "tlp": "AMBER", "source_reliability": "B",
            "information_assessment": "2", "summary": "Cocaine suspected in reefer container",
        },
        "container_number": "CSQU3054383",
        **body,
    }
    return parse_alert(data, empact_codes=CODES, producer="NL-CUSTOMS")


ALERT = container_alert()
RECORD = seal(ALERT, SIGNER, SCHEMAS)


def unseal_record(record: SealedRecord, resolver: Keyring = RING) -> VerifiedAlert:
    return unseal(record.key, record.value, record.headers, resolver, SCHEMAS, CODES)


def resign(
    alert: BaseAlert,
    *,
    value: bytes | None = None,
    key: bytes | None = b"CSQU3054383",
    signer: SigningKey = SIGNER,
    **claims: Any,
) -> SealedRecord:
    """A record correctly signed by `signer`, but with chosen envelope claims or value."""
    h = alert.header
    fields: dict[str, Any] = {
        "message_id": h.message_id, "producer": h.producer, "alert_type": str(alert.alert_type),
        "time": h.created, "key_id": signer.key_id, **claims,
    }
    if value is None:
        value = SCHEMAS.encode(str(alert.alert_type), alert.to_avro())
    headers = sign_record(signer, key, build_headers(**fields), value)
    return SealedRecord(alert_topic(fields["alert_type"]), key or b"", value, headers)


# ---- round trips ----


def test_there_is_an_example_of_every_alert_type() -> None:
    types = {load_example(p).alert_type for p in EXAMPLES}
    assert types == set(AlertType)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_round_trips(path: Path) -> None:
    alert = load_example(path)
    record = seal(alert, SIGNER, SCHEMAS)
    assert record.topic == f"alerts.{alert.alert_type.value}" == alert_topic(alert.alert_type)
    assert record.key == alert.partition_key().encode()
    assert [n for n, _ in record.headers] == [*COVERED_HEADERS, SIGNATURE_HEADER]
    assert record.value[:2] == b"\xc3\x01"
    assert record.value[2:10] == SCHEMAS.fingerprint(alert.alert_type.value)

    verified = unseal(record.key, record.value, record.headers, RING, SCHEMAS, CODES)
    assert verified.alert == alert
    assert verified.key_id == SIGNER.key_id
    assert verified.producer == "NL-CUSTOMS"
    assert verified.message_id == alert.header.message_id
    assert verified.alert_type == alert.alert_type
    assert verified.created == alert.header.created
    assert verified.value_size == len(record.value)


def test_headers_describe_the_alert() -> None:
    h = dict(RECORD.headers)
    assert h["ce_id"] == str(ALERT.header.message_id).encode()
    assert h["ce_source"] == b"urn:epa:member:NL-CUSTOMS"
    assert h["ce_type"] == b"eu.epa.alert.suspicious-container.v1"
    assert h["content-type"] == b"application/avro"
    assert h["bus_keyid"] == SIGNER.key_id.encode()
    assert len(h["bus_sig"]) == 86  # format 1.1: base64url, no padding
    assert all(value.isascii() and value.decode().isprintable() for value in h.values())


def test_seal_refuses_a_key_of_another_member() -> None:
    police = SigningKey("BE-POLICE", SIGNER.key)
    with pytest.raises(BusError, match="BE-POLICE cannot sign an alert produced by NL-CUSTOMS"):
        seal(ALERT, police, SCHEMAS)


def test_record_survives_forwarding_to_another_topic() -> None:
    forwarded = SealedRecord("feed.europol", RECORD.key, RECORD.value, list(RECORD.headers))
    assert unseal_record(forwarded).alert == ALERT


# ---- key resolution ----


def test_unknown_key() -> None:
    with pytest.raises(UnknownKeyError) as info:
        unseal_record(RECORD, Keyring())
    assert info.value.reason is RejectReason.UNKNOWN_KEY


def test_key_of_another_member() -> None:
    # the key is registered to BE-POLICE, the record claims NL-CUSTOMS produced it
    ring = keyring(("BE-POLICE", SIGNER.public))
    with pytest.raises(VerificationError) as info:
        unseal_record(RECORD, ring)
    assert info.value.reason is RejectReason.KEY_NOT_OWNED


def test_other_key_of_the_same_member_does_not_verify() -> None:
    # STRANGER's id in bus_keyid, SIGNER's signature: resolved key != signing key
    forged = resign(ALERT, key_id=STRANGER.key_id)
    ring = keyring(("NL-CUSTOMS", SIGNER.public), ("NL-CUSTOMS", STRANGER.public))
    with pytest.raises(SignatureError, match="does not verify"):
        unseal_record(forged, ring)


def test_resolver_returning_a_key_with_another_id_is_refused() -> None:
    class Confused:
        def lookup(self, key_id: str, producer: str) -> PublicKey:
            return STRANGER.public

        def authorize(self, key_id: str, producer: str, alert_type: str, created: datetime) -> None:
            pass

    with pytest.raises(VerificationError) as info:
        unseal(RECORD.key, RECORD.value, RECORD.headers, Confused(), SCHEMAS, CODES)
    assert info.value.reason is RejectReason.UNKNOWN_KEY


def test_resolver_sees_the_claims() -> None:
    calls = []

    class Recording:
        def lookup(self, key_id: str, producer: str) -> PublicKey:
            calls.append(("lookup", key_id, producer))
            return SIGNER.public

        def authorize(self, key_id: str, producer: str, alert_type: str, created: datetime) -> None:
            calls.append(("authorize", key_id, producer, alert_type, created))

    unseal(RECORD.key, RECORD.value, RECORD.headers, Recording(), SCHEMAS, CODES)
    assert calls == [
        ("lookup", SIGNER.key_id, "NL-CUSTOMS"),
        ("authorize", SIGNER.key_id, "NL-CUSTOMS", "suspicious-container", ALERT.header.created),
    ]
    calls.clear()
    with pytest.raises(SignatureError):  # a record that does not verify is never authorized
        unseal(RECORD.key, RECORD.value + b"\x00", RECORD.headers, Recording(), SCHEMAS, CODES)
    assert [c[0] for c in calls] == ["lookup"]


# ---- tampering ----


def test_tampered_value_is_bad_signature_not_bad_schema() -> None:
    value = RECORD.value[:-1] + b"\x01"  # still decodes, but is not what was signed
    with pytest.raises(SignatureError):
        unseal(RECORD.key, value, RECORD.headers, RING, SCHEMAS, CODES)
    with pytest.raises(SignatureError):  # undecodable garbage is never decoded
        unseal(RECORD.key, b"garbage", RECORD.headers, RING, SCHEMAS, CODES)


def test_tampered_or_null_key_is_bad_signature() -> None:
    for key in (b"CSQU3054384", b"", None):
        with pytest.raises(SignatureError):
            unseal(key, RECORD.value, RECORD.headers, RING, SCHEMAS, CODES)


def test_missing_signature() -> None:
    headers = [(n, v) for n, v in RECORD.headers if n != SIGNATURE_HEADER]
    with pytest.raises(SignatureError, match="no bus_sig"):
        unseal(RECORD.key, RECORD.value, headers, RING, SCHEMAS, CODES)
    with pytest.raises(SignatureError, match="no bus_sig"):  # checked before the key
        unseal(RECORD.key, RECORD.value, headers, Keyring(), SCHEMAS, CODES)


def test_duplicated_header_is_bad_signature() -> None:
    headers = [*RECORD.headers, ("ce_id", dict(RECORD.headers)["ce_id"])]
    with pytest.raises(SignatureError, match="more than once"):
        unseal(RECORD.key, RECORD.value, headers, RING, SCHEMAS, CODES)


def flip(data: bytes, index: int, bit: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


# What a flipped bit in each place may be reported as (it must never verify). Claims
# that select the key are checked by the resolver before the signature can be.
ALLOWED = {
    "key": {RejectReason.BAD_SIGNATURE},
    "value": {RejectReason.BAD_SIGNATURE},
    "bus_sig": {RejectReason.BAD_SIGNATURE},
    "ce_specversion": {RejectReason.BAD_SCHEMA},
    "content-type": {RejectReason.BAD_SCHEMA},
    "ce_id": {RejectReason.BAD_SIGNATURE, RejectReason.BAD_SCHEMA},
    "ce_type": {RejectReason.BAD_SIGNATURE, RejectReason.BAD_SCHEMA},
    "ce_time": {RejectReason.BAD_SIGNATURE, RejectReason.BAD_SCHEMA},
    "ce_source": {RejectReason.BAD_SCHEMA, RejectReason.KEY_NOT_OWNED},
    "bus_keyid": {RejectReason.BAD_SCHEMA, RejectReason.UNKNOWN_KEY},
}


@settings(max_examples=300)
@given(
    part=st.sampled_from(sorted(ALLOWED)),
    index=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_flipped_bit_is_refused(part: str, index: int, bit: int) -> None:
    key, value, headers = RECORD.key, RECORD.value, RECORD.headers
    if part == "key":
        key = flip(key, index, bit)
    elif part == "value":
        value = flip(value, index, bit)
    else:
        headers = [(n, flip(v, index, bit) if n == part else v) for n, v in headers]
    with pytest.raises(VerificationError) as info:
        unseal(key, value, headers, RING, SCHEMAS, CODES)
    assert info.value.reason in ALLOWED[part], info.value


# ---- signed, but inconsistent or invalid ----


@pytest.mark.parametrize(
    ("claims", "header"),
    [
        ({"message_id": new_message_id()}, "ce_id"),
        ({"time": ALERT.header.created + timedelta(milliseconds=1)}, "ce_time"),
        ({"alert_type": "corruption-indicator"}, "ce_type"),
    ],
)
def test_envelope_that_disagrees_with_the_body(claims: dict[str, Any], header: str) -> None:
    with pytest.raises(SignatureError, match=f"header {header} .*disagrees with body"):
        unseal_record(resign(ALERT, **claims))


def test_producer_that_disagrees_with_the_body() -> None:
    police = SigningKey("BE-POLICE", SIGNER.key)
    record = resign(ALERT, producer="BE-POLICE", signer=police)
    with pytest.raises(SignatureError, match=r"header ce_source .*disagrees with body"):
        unseal_record(record, keyring(("BE-POLICE", SIGNER.public)))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"\xc3\x01", "shorter than"),
        (b"{}" + bytes(12), "not Avro single-object encoding"),
        (b"\xc3\x01" + bytes(8) + b"\x00", "unknown schema fingerprint"),
        (RECORD.value[:-3], "does not decode"),
        (RECORD.value + b"\x00", "trailing bytes"),
    ],
)
def test_signed_but_undecodable_value_is_bad_schema(value: bytes, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        unseal_record(resign(ALERT, value=value))


def test_signed_but_invalid_alert_is_bad_schema_naming_the_field() -> None:
    record = ALERT.to_avro()
    record["container_number"] = "CSQU3054384"  # wrong ISO 6346 check digit
    value = SCHEMAS.encode("suspicious-container", record)
    with pytest.raises(SchemaError, match="container_number"):
        unseal_record(resign(ALERT, value=value))


def test_malformed_envelope_is_bad_schema() -> None:
    headers = [(n, b"2.0" if n == "ce_specversion" else v) for n, v in RECORD.headers]
    with pytest.raises(SchemaError, match="ce_specversion"):
        unseal(RECORD.key, RECORD.value, headers, RING, SCHEMAS, CODES)

