"""Avro Single Object Encoding and the schema set."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from fastavro.schema import load_schema, to_parsing_canonical_form
from hypothesis import given
from hypothesis import strategies as st

from bus.adapters.schema_files import load_schemas
from bus.core.codec import HEADER_SIZE, MAGIC, SchemaSet, crc64_fingerprint
from bus.errors import BusError, SchemaError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_schemas(REPO / "schemas" / "avro")

HEADER = {
    "type": "record", "name": "Head", "namespace": "t",
    "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}],
}
CURRENT = {
    "type": "record", "name": "Thing", "namespace": "t",
    "fields": [
        {"name": "header", "type": "t.Head"},
        {"name": "label", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}
OLD = {
    "type": "record", "name": "Thing", "namespace": "t",
    "fields": [{"name": "header", "type": "t.Head"}, {"name": "label", "type": "string"}],
}
OTHER = {"type": "record", "name": "Other", "namespace": "t",
         "fields": [{"name": "x", "type": "int"}]}
RECORD = {"header": {"id": "a1", "n": 7}, "label": "MSCU1234565", "tags": ["x", "y"]}
TEXTS = {
    "t.Head.avsc": json.dumps(HEADER),
    "thing.avsc": json.dumps(CURRENT),
    "thing.r1.avsc": json.dumps(OLD),
    "other-thing.avsc": json.dumps(OTHER),
}


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO exactly as written out in the Avro specification."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    for name, text in TEXTS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def schemas() -> SchemaSet:
    return SchemaSet.from_texts(TEXTS)


def test_fingerprint_byte_order_matches_the_avro_spec() -> None:
    # Avro's own test data: fingerprint64("null") = 7195948357588979594 (a Java long);
    # SOE carries it little-endian.
    assert crc64_avro(b'"null"') == 7195948357588979594
    assert crc64_fingerprint("null") == (7195948357588979594).to_bytes(8, "little")
    assert crc64_fingerprint("null").hex() == "8a8f25cce724dd63"


def test_soe_header_is_magic_plus_little_endian_crc(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    pcf = to_parsing_canonical_form(schemas.schema("thing"))
    assert '"type":"t.Head"' not in pcf  # referenced schema inlined in the canonical form
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == crc64_avro(pcf.encode()).to_bytes(8, "little")
    assert data[2:10] == schemas.fingerprint("thing")


def test_alert_types_are_the_unversioned_files(schemas: SchemaSet) -> None:
    assert schemas.alert_types == {"thing", "other-thing"}
    assert sorted(name for _, name in schemas.fingerprints().values()) == [
        "other-thing.avsc", "thing.avsc", "thing.r1.avsc"
    ]


def test_round_trip(schemas: SchemaSet) -> None:
    assert schemas.decode(schemas.encode("thing", RECORD)) == ("thing", RECORD)
    assert schemas.decode(schemas.encode("other-thing", {"x": -3})) == ("other-thing", {"x": -3})


def test_older_writer_schema_is_resolved_to_the_current_one(
    schemas: SchemaSet, schema_dir: Path
) -> None:
    old = load_schema(str(schema_dir / "thing.r1.avsc"))
    buf = io.BytesIO()
    schemaless_writer(buf, old, {"header": {"id": "a1", "n": 7}, "label": "L"})
    alert_type, record = schemas.decode(MAGIC + crc64_fingerprint(old) + buf.getvalue())
    assert alert_type == "thing"
    assert record == {"header": {"id": "a1", "n": 7}, "label": "L", "tags": []}


def test_encode_unknown_type(schemas: SchemaSet) -> None:
    with pytest.raises(SchemaError, match="no schema for alert type 'nope'"):
        schemas.encode("nope", RECORD)
    with pytest.raises(SchemaError):
        schemas.fingerprint("nope")


@pytest.mark.parametrize(
    "record",
    [
        {**RECORD, "label": 5},
        {"header": RECORD["header"]},
        {**RECORD, "surprise": 1},  # would be dropped silently without strict mode
    ],
)
def test_encode_rejects_records_that_do_not_fit(schemas: SchemaSet, record: dict[str, Any]) -> None:
    with pytest.raises(SchemaError, match="does not fit"):
        schemas.encode("thing", record)


def test_decode_too_short(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    for n in range(HEADER_SIZE):
        with pytest.raises(SchemaError, match="shorter than the 10-byte SOE header"):
            schemas.decode(data[:n])


def test_decode_wrong_magic(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    for bad in (b"\x00\x01", b"\xc3\x02", b"\x01\xc3"):
        with pytest.raises(SchemaError, match="not Avro single-object encoding"):
            schemas.decode(bad + data[2:])


def test_decode_unknown_fingerprint(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    wrong_order = data[:2] + data[2:10][::-1] + data[10:]  # big-endian is not accepted
    with pytest.raises(SchemaError, match="unknown schema fingerprint"):
        schemas.decode(wrong_order)


def test_decode_every_truncation_fails(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    for n in range(HEADER_SIZE, len(data)):
        with pytest.raises(SchemaError, match="does not decode"):
            schemas.decode(data[:n])


def test_decode_trailing_bytes(schemas: SchemaSet) -> None:
    data = schemas.encode("thing", RECORD)
    with pytest.raises(SchemaError, match="1 trailing bytes"):
        schemas.decode(data + b"\x00")


def test_decode_garbage_body(schemas: SchemaSet) -> None:
    header = schemas.encode("thing", RECORD)[:HEADER_SIZE]
    with pytest.raises(SchemaError, match="does not decode"):
        schemas.decode(header + b"\xff" * 12)  # endless varint / negative lengths


@given(alert_type=st.sampled_from(sorted(SHIPPED.alert_types)), body=st.binary(max_size=200))
def test_decode_arbitrary_body_only_raises_schema_error(alert_type: str, body: bytes) -> None:
    try:
        decoded_type, record = SHIPPED.decode(MAGIC + SHIPPED.fingerprint(alert_type) + body)
    except SchemaError:
        return
    assert decoded_type == alert_type and isinstance(record, dict)


def test_fingerprints_are_those_of_fastavro_loading_the_files(schemas: SchemaSet, schema_dir: Path) -> None:
    """Texts in memory resolve references exactly like files in a folder: same bytes on the wire."""
    for name in ("thing.avsc", "thing.r1.avsc", "other-thing.avsc"):
        from_file = load_schema(str(schema_dir / name))
        assert schemas.fingerprints()[crc64_fingerprint(from_file)][1] == name


def test_no_alert_schema_is_a_clear_error() -> None:
    with pytest.raises(BusError, match=r"no <alert-type>\.avsc schemas in <memory>"):
        SchemaSet.from_texts({})
    with pytest.raises(BusError, match=r"no <alert-type>\.avsc schemas in shelf"):
        SchemaSet.from_texts({"t.Head.avsc": TEXTS["t.Head.avsc"], "notes.txt": "x"}, origin="shelf")


def test_unloadable_schema_is_a_clear_error() -> None:
    with pytest.raises(BusError, match=r"cannot load Avro schema shelf/thing\.avsc"):
        SchemaSet.from_texts({"thing.avsc": TEXTS["thing.avsc"]}, origin="shelf")  # t.Head is missing
    with pytest.raises(BusError, match=r"cannot load Avro schema .*thing\.avsc"):
        SchemaSet.from_texts({"thing.avsc": "{not json"})


# ---- the shipped schemas ----


def test_shipped_schemas_cover_every_alert_type() -> None:
    from bus.core.models import AlertType

    shipped = SHIPPED
    assert shipped.alert_types == {t.value for t in AlertType}
    for alert_type in shipped.alert_types:
        pcf = to_parsing_canonical_form(shipped.schema(alert_type))
        assert shipped.fingerprint(alert_type) == crc64_avro(pcf.encode()).to_bytes(8, "little")
