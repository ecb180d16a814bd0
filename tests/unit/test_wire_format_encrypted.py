"""docs/wire-format.md, "Encrypted alerts": its test vector decrypts from the text alone.

The first test follows the document step by step with generic tools only: fastavro for
the Avro record, X25519 / HKDF / ChaCha20-Poly1305 primitives, and an HPKE open written
here from RFC 9180 (so the document's suite, mode, `info` and empty `aad` are checked, not
just what `cryptography`'s HPKE happens to do). The second feeds the same value to the
reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastavro import schemaless_reader
from fastavro.schema import load_schema

from bus.adapters.schema_files import default_schemas
from bus.core.confidential import SUITE, Decryptor, VerifiedEnvelope, unseal_and_decrypt, unseal_any
from bus.core.keyring import Keyring
from bus.core.keys import DecryptionKey, SigningKey
from bus.core.models import parse_alert
from bus.core.sealing import sign_value
from tests.helpers import CODES, SCHEMAS

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "wire-format.md").read_text()
SECTION = DOC[DOC.index("## Encrypted alerts (EPA-BUS-ENC/1)"):]
VECTOR = SECTION[SECTION.index("### E.9 Test vector"):SECTION.index("### E.10")]


def field(label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(\S+)$", VECTOR, re.MULTILINE)
    assert match, f"no {label!r} in the vector"
    return match.group(1)


def recipients() -> dict[str, dict[str, str]]:
    found = re.findall(r"^(\S+)\s+private key\s+([0-9a-f]{64})\n\s+public key\s+([0-9a-f]{64})\n"
                       r"\s+key id\s+([0-9a-f]{32})$", VECTOR, re.MULTILINE)
    assert len(found) == 2
    return {m: {"private": priv, "public": pub, "key_id": kid} for m, priv, pub, kid in found}


def value() -> bytes:
    block = VECTOR[VECTOR.index("Value ("):]
    lines = block.split("```")[1].split()
    return bytes.fromhex("".join(lines))


def expected_alert() -> dict[str, object]:
    return json.loads(VECTOR.split("```json")[1].split("```")[0])


def part(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


# -- HPKE base mode open, RFC 9180, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 ----

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0003


def extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(SHA256(), length, info).derive(prk)


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info, length)


def hpke_open(enc: bytes, sk: X25519PrivateKey, info: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    kem_suite = b"KEM" + struct.pack(">H", KEM_ID)
    dh = sk.exchange(X25519PublicKey.from_public_bytes(enc))
    pk_rm = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    eae_prk = labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared_secret = labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + pk_rm, 32)

    suite = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)
    mode_base = b"\x00"
    context = (mode_base + labeled_extract(suite, b"", b"psk_id_hash", b"")
               + labeled_extract(suite, b"", b"info_hash", info))
    secret = labeled_extract(suite, shared_secret, b"secret", b"")
    key = labeled_expand(suite, secret, b"key", context, 32)
    base_nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(base_nonce, ciphertext, aad)  # sequence number 0


# -- the tests ------------------------------------------------------------------------------------


def test_the_vector_decrypts_following_the_document_alone() -> None:
    raw = value()
    assert raw[:2] == b"\xc3\x01"
    fingerprint = re.search(r"current fingerprint is `([0-9a-f]{16})`", SECTION)
    assert fingerprint and raw[2:10].hex() == fingerprint.group(1)
    schema = load_schema(str(REPO / "schemas" / "avro" / "eu.epa.bus.EncryptedAlert.avsc"))
    buf = io.BytesIO(raw[10:])
    record = schemaless_reader(buf, schema, None)
    assert buf.tell() == len(raw) - 10
    assert isinstance(record, dict)

    ciphertext = record["ciphertext"]
    aad = raw[: len(raw) - len(ciphertext)]
    sizes = re.search(r"Value \((\d+) bytes; the ciphertext is its last (\d+) bytes, so `aad` is the first (\d+)",
                      VECTOR)
    assert sizes and (len(raw), len(ciphertext), len(aad)) == tuple(int(x) for x in sizes.groups())
    header = record["header"]
    mid = field("ce_id")
    assert str(header["message_id"]) == mid == field("key")
    assert [w["member"] for w in record["recipients"]] == header["release_to"]

    data_key = bytes.fromhex(field("data key"))
    assert record["nonce"] == bytes.fromhex(field("nonce"))
    for entry in record["recipients"]:
        member, keys = entry["member"], recipients()[entry["member"]]
        private = X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["private"]))
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert public.hex() == keys["public"]
        assert hashlib.sha256(public).hexdigest()[:32] == keys["key_id"] == entry["key_id"]
        info = (b"EPA-BUS-ENC/1 wrapped-key" + b"\x00" + part(mid.encode()) + part(member.encode())
                + part(entry["key_id"].encode()))
        if member == "NL-POLICE":
            assert info.hex() == field("info (NL-POLICE)")
        assert hpke_open(entry["enc"], private, info, b"", entry["sealed_key"]) == data_key
        # the library the reference implementation uses agrees
        assert SUITE.decrypt(entry["enc"] + entry["sealed_key"], private, info=info) == data_key

    commitment = hashlib.sha256(b"EPA-BUS-ENC/1 key commitment" + b"\x00" + data_key).digest()
    assert record["key_commitment"] == commitment == bytes.fromhex(field("key commitment"))
    plaintext = ChaCha20Poly1305(data_key).decrypt(record["nonce"], ciphertext, aad)
    assert len(plaintext) % 256 == 0
    stripped = plaintext.rstrip(b"\x00")
    assert stripped.endswith(b"\x80")
    inner = stripped[:-1]
    assert len(inner) == int(field("inner length"))
    assert hashlib.sha256(inner).hexdigest() == field("inner sha256")

    alert_type, body = default_schemas().decode(inner)
    expected = parse_alert(expected_alert(), empact_codes=CODES)
    assert alert_type == field("ce_type").removeprefix("eu.epa.alert.").removesuffix(".v1")
    assert body == expected.to_avro() | {"header": body["header"]}  # same body fields
    assert parse_alert(expected_alert(), empact_codes=CODES).model_dump() == (
        type(expected).from_avro(body, empact_codes=CODES).model_dump())


def test_the_reference_implementation_reads_the_vector() -> None:
    raw = value()
    expected = parse_alert(expected_alert(), empact_codes=CODES)
    producer = SigningKey.generate("NL-CUSTOMS")  # signing is section 8's business: any key will do
    record = sign_value(expected, producer, field("key").encode(), raw)
    ring = Keyring()
    ring.add("NL-CUSTOMS", producer.public)

    envelope = unseal_any(record.key, record.value, record.headers, ring, SCHEMAS, CODES)
    assert isinstance(envelope, VerifiedEnvelope)
    assert dict(record.headers)["ce_time"].decode() == field("ce_time")
    assert envelope.routing_facts().tlp == "RED" and envelope.header.release_to == ["NL-POLICE", "EUROPOL"]
    for member, keys in recipients().items():
        key = DecryptionKey(member, X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["private"])))
        assert key.key_id == keys["key_id"]
        verified = unseal_and_decrypt(record.key, record.value, record.headers, ring, Decryptor.of([key]),
                                      SCHEMAS, CODES)
        assert verified.alert == expected and verified.encrypted


@pytest.mark.parametrize("name", ["EncryptedAlert", "AlertHeader"])
def test_named_type_files_are_not_alert_types(name: str) -> None:
    schemas = default_schemas()
    assert schemas.alert_types == {"suspicious-container", "corruption-indicator", "operation-notice"}
    assert all(file != f"eu.epa.bus.{name}.avsc" for _, file in schemas.fingerprints().values())
