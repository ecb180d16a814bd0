"""docs/wire-format.md is the spec: every vector and table in it is parsed out of the
markdown and checked against the implementation, so the document cannot drift."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.adapters.federation_file import parse_directory
from bus.adapters.schema_files import default_schemas
from bus.cli.schema import fingerprint_rows, markdown_table
from bus.core.keys import _SMALL_ORDER_Y, PublicKey, SigningKey
from bus.core.models import parse_alert
from bus.core.sealing import seal, unseal
from bus.core.signing import (
    DOMAINS,
    SIGNATURE_HEADER,
    V1_0_ACCEPTED_UNTIL,
    WireVersion,
    encode_signature,
    signing_input,
    verify_record,
)
from bus.core.trust import FederationDirectory, verify_directory
from bus.errors import RejectReason, VerificationError
from tests.helpers import CODES, SCHEMAS

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "wire-format.md").read_text()
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
L = 2**252 + 27742317777372353535851937790883648493


def section(number: str) -> str:
    """The text of `### <number> ...` (or `## <number>. ...`) up to the next heading of any level."""
    match = re.search(rf"^(##+) {re.escape(number)}\.? .*?$(.*?)(?=^##)", DOC + "\n## end", re.M | re.S)
    assert match, f"docs/wire-format.md has no section {number}"
    return match.group(2)


def blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def labelled(block: str) -> dict[str, str]:
    """`label   value` lines, labels of one or two words."""
    out = {}
    for line in block.splitlines():
        if m := re.match(r"(\w+(?: \w+)?)\s{2,}(\S.*)$", line):
            out[m[1]] = m[2]
    return out


def record_block(block: str) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """(key, value or None, headers) from a `key / value / headers` block."""
    key = value = None
    headers: list[tuple[str, bytes]] = []
    in_headers = False
    for line in block.splitlines():
        if line.startswith("key "):
            key = bytes.fromhex(line.split("=")[1].strip())
        elif line.startswith("value "):
            value = bytes.fromhex(line.split()[1])
        else:
            if line.startswith("headers "):
                in_headers, line = True, line.removeprefix("headers")
            if in_headers:
                name, text = line.split()
                headers.append((name, text.encode()))
    assert key is not None
    return key, value, headers


def hex_block(block: str) -> bytes:
    return bytes.fromhex("".join(block.split()))


SEED = bytes.fromhex(labelled(blocks(section("11.1"))[0])["seed"])
SIGNER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(SEED))


# ---- 11.1 and 11.2 ----


def test_key_vector() -> None:
    fields = labelled(blocks(section("11.1"))[0])
    raw = SIGNER.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == fields["public key"]
    assert SIGNER.key_id == fields["key id"]


def vector_a() -> tuple[bytes, bytes, list[tuple[str, bytes]], list[str]]:
    text = section("11.2")
    record, parts, _, _ = blocks(text)
    key, value, headers = record_block(record)
    assert value is not None
    return key, value, headers, parts.split()


def test_vector_a_signing_input_and_signature() -> None:
    text = section("11.2")
    _, _, signature, bus_sig = blocks(text)
    key, value, headers, parts = vector_a()
    data = signing_input(key, headers, value, WireVersion.V1_1)
    assert hex_block("".join(parts)) == data
    assert f"Signing input ({len(data)} bytes)" in text
    assert bytes.fromhex(parts[0]) == DOMAINS[WireVersion.V1_1] == b"EPA-BUS-SIG/1.1\x00"
    for line in parts[1:]:  # one length-prefixed part per line
        part = bytes.fromhex(line)
        assert int.from_bytes(part[:4], "big") == len(part) - 4
    raw = SIGNER.sign(data)
    assert raw == hex_block(signature)
    assert encode_signature(raw).decode() == bus_sig.strip()
    assert verify_record(SIGNER.public, key, [*headers, (SIGNATURE_HEADER, bus_sig.strip().encode())], value) \
        is WireVersion.V1_1


def test_vector_a_by_an_independent_reading_of_section_5() -> None:
    key, value, headers, parts = vector_a()

    def part(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    manual = b"EPA-BUS-SIG/1.1\x00" + part(key)
    manual += b"".join(part(n.encode()) + part(v) for n, v in headers)
    manual += part(value)
    assert manual == hex_block("".join(parts))


def test_vector_b_is_the_same_record_in_format_1_0() -> None:
    text = section("11.3")
    domain, signature = blocks(text)
    key, value, headers, parts = vector_a()
    data = hex_block(domain) + hex_block("".join(parts[1:]))
    assert data == signing_input(key, headers, value, WireVersion.V1_0)
    assert f"Signing input ({len(data)} bytes)" in text
    raw = hex_block(signature)
    assert SIGNER.sign(data) == raw
    assert verify_record(SIGNER.public, key, [*headers, (SIGNATURE_HEADER, raw)], value) is WireVersion.V1_0


# ---- 11.4 to 11.6: a complete alert, rejections, the directory ----


def directory_from_doc() -> FederationDirectory:
    pem, document, _ = blocks(section("11.6"))
    authority = PublicKey.from_pem(pem.encode())
    return verify_directory(parse_directory(yaml.safe_load(document)), authority)


DIRECTORY = directory_from_doc()


def vector_c() -> tuple[bytes, bytes, list[tuple[str, bytes | None]], dict[str, Any]]:
    record, value, decoded = blocks(section("11.4"))
    key, _, headers = record_block(record)
    return key, hex_block(value), list(headers), json.loads(decoded)


def test_vector_c_verifies_and_decodes() -> None:
    key, value, headers, decoded = vector_c()
    assert f"Value ({len(value)} bytes)" in section("11.4")
    assert value[2:10] == default_schemas().fingerprint("suspicious-container")
    verified = unseal(key, value, headers, DIRECTORY, SCHEMAS, CODES)
    assert verified.alert.model_dump(mode="json") == decoded
    assert verified.wire_version is WireVersion.V1_1


def test_vector_c_is_what_the_bus_writes() -> None:
    key, value, headers, decoded = vector_c()
    header = {**decoded["header"], "created": "2024-05-01T12:00:00.123Z"}
    alert = parse_alert({**decoded, "header": header}, empact_codes=CODES)
    record = seal(alert, SIGNER, SCHEMAS)
    assert (record.key, record.value, record.headers) == (key, value, headers)


def apply(change: str, key: bytes, value: bytes | None, headers: list[tuple[str, bytes | None]]
          ) -> tuple[bytes, bytes | None, list[tuple[str, bytes | None]], dict[str, Any]]:
    """One change of the 11.5 table, in its documented mini-language."""
    op, target, *rest = change.split(" ", 2)
    arg = rest[0] if rest else ""
    options: dict[str, Any] = {}
    if op == "set" and target == "bus_sig:last":
        headers = [(n, v[:-1] + arg.encode() if n == SIGNATURE_HEADER and v else v) for n, v in headers]
    elif op == "set":
        headers = [(n, json.loads(arg).encode() if n == target else v) for n, v in headers]
    elif op == "null" and target == "value":
        value = None
    elif op == "null":
        headers = [(n, None if n == target else v) for n, v in headers]
    elif op == "drop":
        headers = [(n, v) for n, v in headers if n != target]
    elif op == "repeat":
        headers = [*headers, *[(n, v) for n, v in headers if n == target]]
    elif op == "append":
        assert value is not None
        value += bytes.fromhex(arg)
    elif op == "sig":
        raw = base64.urlsafe_b64decode(dict(headers)[SIGNATURE_HEADER] + b"==")  # type: ignore[operator]
        s = int.from_bytes(raw[32:], "little") + L
        forged = encode_signature(raw[:32] + s.to_bytes(32, "little"))
        headers = [(n, forged if n == SIGNATURE_HEADER else v) for n, v in headers]
    elif op == "resign":
        assert value is not None
        unsigned = [(n, v) for n, v in headers if n != SIGNATURE_HEADER]
        raw = SIGNER.sign(signing_input(key, unsigned, value, WireVersion.V1_0))
        headers = [*unsigned, (SIGNATURE_HEADER, raw)]
        if arg != "-":
            options["accept_v1_0_until"] = datetime.fromisoformat(arg)
    else:
        raise AssertionError(f"unknown change {change!r} in docs/wire-format.md 11.5")
    return key, value, headers, options


def rejection_rows() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| `(.+)` \| (`?[a-z-]+`?) \|$", section("11.5"), re.M)
    assert len(rows) >= 15
    return [(change, verdict.strip("`")) for change, verdict in rows]


@pytest.mark.parametrize(("change", "verdict"), rejection_rows())
def test_rejection_vectors(change: str, verdict: str) -> None:
    key, value, headers, _ = vector_c()
    key, value, headers, options = apply(change, key, value, headers)
    if verdict == "accepted":
        unseal(key, value, headers, DIRECTORY, SCHEMAS, CODES, **options)
        return
    with pytest.raises(VerificationError) as info:
        unseal(key, value, headers, DIRECTORY, SCHEMAS, CODES, **options)
    assert info.value.reason is RejectReason(verdict), info.value


def test_directory_vector() -> None:
    pem, _, canonical = blocks(section("11.6"))
    assert DIRECTORY.canonical_bytes().decode() == canonical.strip()
    assert "RFC 8032 TEST 2" in section("11.6")
    seed = re.search(r"seed\s+`([0-9a-f]{64})`", section("11.6"))
    assert seed
    authority = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed[1]))
    assert PublicKey(authority.public_key()).to_pem().decode() == pem


# ---- an independent verifier of the trust root, written from section 8 only ----


def raw_key_from_pub(pem: str) -> bytes:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    assert len(der) == 44 and der[:12] == SPKI_PREFIX and body.startswith("MCowBQYDK2VwAyEA")
    return der[12:]


def utc_text(value: Any) -> str:
    from datetime import UTC

    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{when.microsecond:06d}" if when.microsecond else "") + "Z"


def canonical_json(document: dict[str, Any]) -> bytes:
    content = {k: v for k, v in document.items() if k != "signature"}
    content["issued_at"] = utc_text(content["issued_at"])
    content.setdefault("members", [])
    for member in content["members"]:
        member.setdefault("may_publish", [])
        member.setdefault("keys", [])
        for key in member["keys"]:
            key.setdefault("revoked_at", None)
            key.setdefault("revocation_reason", None)
            for field in ("not_before", "not_after", "revoked_at"):
                if key[field] is not None:
                    key[field] = utc_text(key[field])
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def independent_verify(pem: str, yaml_text: str) -> dict[str, Any]:
    import hashlib

    raw = raw_key_from_pub(pem)
    document = yaml.safe_load(yaml_text)
    signature = document["signature"]
    assert signature["authority_key_id"] == hashlib.sha256(raw).hexdigest()[:32]
    data = b"EPA-BUS-FEDERATION/1\x00" + canonical_json(document)
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature["signature"]), data)
    for member in document["members"]:
        for key in member["keys"]:
            assert key["key_id"] == hashlib.sha256(base64.b64decode(key["public_key"])).hexdigest()[:32]
    return document


def test_the_directory_vector_verifies_from_the_spec_alone() -> None:
    pem, document, canonical = blocks(section("11.6"))
    assert canonical_json(yaml.safe_load(document)).decode() == canonical.strip()
    independent_verify(pem, document)


def test_the_shipped_example_directory_verifies_from_the_spec_alone() -> None:
    directory = independent_verify((REPO / "federation" / "authority.pub").read_text(),
                                   (REPO / "federation" / "federation.yaml").read_text())
    assert directory["federation_id"] == "EPA" and directory["members"]


# ---- tables and constants quoted in the text ----


def test_fingerprint_table_is_generated_from_the_shipped_schemas() -> None:
    table = DOC.split("<!-- fingerprints:begin -->\n")[1].split("<!-- fingerprints:end -->")[0]
    assert table.strip().splitlines() == markdown_table(fingerprint_rows(default_schemas()))


def test_canonical_form_example_and_the_avro_package_difference() -> None:
    import avro.schema
    from fastavro.schema import load_schema, parse_schema, to_parsing_canonical_form

    from bus.core.codec import crc64_fingerprint

    text = section("2.1")
    rows = re.findall(r"^\| (.+?) \| `(\{.+?\})` \| `([0-9a-f]{16})` \|$", text, re.M)
    (_, right_pcf, right_fp), (_, wrong_pcf, wrong_fp) = rows
    example = {"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
    assert to_parsing_canonical_form(parse_schema(example)) == right_pcf
    assert crc64_fingerprint(parse_schema(example)).hex() == right_fp
    python_avro = avro.schema.parse(json.dumps(example))
    assert python_avro.canonical_form == wrong_pcf
    assert bytes(python_avro.fingerprint("CRC-64-AVRO")).hex() == wrong_fp
    shipped = load_schema(str(REPO / "schemas" / "avro" / "suspicious-container.avsc"), _write_hint=False)
    claim = re.search(r"computes\s+`([0-9a-f]{16})` instead of `([0-9a-f]{16})`", re.sub(r"\n>\s*", " ", text))
    assert claim
    assert bytes(avro.schema.parse(json.dumps(shipped)).fingerprint("CRC-64-AVRO")).hex() == claim[1]
    assert default_schemas().fingerprint("suspicious-container").hex() == claim[2]


def test_small_order_list_is_the_implementations() -> None:
    text = " ".join(section("6").split())
    listed = {0, 1, 2**255 - 20}
    listed |= {int.from_bytes(bytes.fromhex(h), "little") for h in re.findall(r"`([0-9a-f]{64})`", text)}
    assert listed == _SMALL_ORDER_Y
    assert "(p - 1)" in text and "`00…00`" in text and "`01 00…00`" in text


def test_the_documented_default_window_is_the_codes() -> None:
    assert f"**{V1_0_ACCEPTED_UNTIL:%Y-%m-%dT%H:%M:%SZ}**" in section("5.5")


def test_every_reason_code_in_the_table_exists() -> None:
    codes = re.findall(r"^\| `([a-z-]+)` \|", section("10"), re.M)
    assert {RejectReason(c) for c in codes} >= {
        RejectReason.BAD_SCHEMA, RejectReason.BAD_SIGNATURE, RejectReason.UNKNOWN_KEY, RejectReason.KEY_NOT_OWNED,
        RejectReason.UNSUPPORTED_FORMAT, RejectReason.KEY_NOT_YET_VALID, RejectReason.KEY_REVOKED,
        RejectReason.KEY_EXPIRED, RejectReason.TYPE_NOT_ALLOWED,
    }


def test_the_vector_container_number_has_a_valid_check_digit() -> None:
    from stdnum import iso6346

    for number in set(re.findall(r"\b[A-Z]{3}U\d{7}\b", DOC)):
        assert iso6346.is_valid(number), number
