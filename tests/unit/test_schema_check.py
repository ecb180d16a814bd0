"""`bus schema check`: Avro resolution both ways against every older revision, field by field."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import load_schema
from typer.testing import CliRunner

from bus.adapters.schema_files import load_schemas
from bus.adapters.schema_history import load_history
from bus.cli import app
from bus.core.schema_compat import Direction, compare
from tests.helpers import CODES

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "schemas" / "avro"
runner = CliRunner()


def raw(name: str) -> dict[str, Any]:
    """A shipped schema file as written (named types referenced, not inlined)."""
    return json.loads((SHIPPED / name).read_text())


def bus(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})
    return result.exit_code, result.output


def write(path: Path, schema: dict[str, Any]) -> Path:
    path.write_text(json.dumps(schema, indent=1))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped schemas to add revisions to."""
    target = tmp_path / "avro"
    shutil.copytree(SHIPPED, target)
    return target


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(schema)
    new["fields"].append(field)
    return new


def without_field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    new = copy.deepcopy(schema)
    new["fields"] = [f for f in new["fields"] if f["name"] != name]
    return new


def retyped(schema: dict[str, Any], name: str, type_: Any) -> dict[str, Any]:
    new = copy.deepcopy(schema)
    for f in new["fields"]:
        if f["name"] == name:
            f["type"] = type_
    return new


# ---- the CLI on a proposed new schema ----


def test_an_optional_field_with_a_default_is_compatible(tmp_path: Path) -> None:
    new = with_field(raw("suspicious-container.avsc"),
                     {"name": "berth", "type": ["null", "string"], "default": None})
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", new)))
    assert code == 0, output
    assert "suspicious-container.avsc: backward and forward compatible" in output


def test_a_removed_required_field_fails_naming_the_field(tmp_path: Path) -> None:
    new = without_field(raw("suspicious-container.avsc"), "container_number")
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", new)))
    assert code == 1
    assert "FAIL" in output
    # old readers need container_number and the new writer no longer has it
    assert "forward: field container_number: the reader has a field the writer lacks, and no default" in output


def test_a_changed_type_fails_naming_the_field_both_ways(tmp_path: Path) -> None:
    new = retyped(raw("suspicious-container.avsc"), "risk_score", ["null", "string"])
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", new)))
    assert code == 1
    assert "backward: field risk_score: the reader's union has no branch" in output
    assert "forward: field risk_score: the reader's union has no branch" in output


def test_a_required_field_without_default_breaks_reading_old_data(tmp_path: Path) -> None:
    new = with_field(raw("operation-notice.avsc"), {"name": "case_officer", "type": "string"})
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", new)))
    assert code == 1
    assert "backward: field case_officer: the reader has a field the writer lacks" in output


def test_a_change_inside_the_shared_header_names_the_nested_field() -> None:
    current = load_schema(str(SHIPPED / "corruption-indicator.avsc"), _write_hint=False)
    new = copy.deepcopy(current)
    header = new["fields"][0]["type"]
    header["fields"] = [f for f in header["fields"] if f["name"] != "producer"]
    problems = compare(new, current)
    assert [(p.direction, p.field) for p in problems] == [(Direction.FORWARD, "header.producer")]


def test_promotable_type_changes_pass_one_way_only() -> None:
    current = load_schema(str(SHIPPED / "suspicious-container.avsc"), _write_hint=False)
    widened = retyped(current, "risk_score", ["null", "float"])  # float -> double promotes; back does not
    problems = compare(current, widened)  # current (double) reads float data: fine; float reads double: not
    assert [(p.direction, p.field) for p in problems] == [(Direction.FORWARD, "risk_score")]


def test_an_unknown_record_name_is_refused(tmp_path: Path) -> None:
    other = {"type": "record", "name": "Nothing", "namespace": "x", "fields": []}
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", other)))
    assert code == 2 and "record x.Nothing is no alert schema" in output


def test_an_unchanged_schema_has_nothing_to_check() -> None:
    code, output = bus("schema", "check", str(SHIPPED / "suspicious-container.avsc"))
    assert code == 0 and "same canonical form" in output


def test_check_needs_a_file_or_all() -> None:
    assert bus("schema", "check")[0] == 2
    assert bus("schema", "check", str(SHIPPED / "suspicious-container.avsc"), "--all")[0] == 2


# ---- the folder's own history ----


def test_the_shipped_schemas_pass() -> None:
    code, output = bus("schema", "check", "--all")
    assert code == 0, output


def test_all_checks_every_older_revision(folder: Path) -> None:
    current = load_schema(str(folder / "suspicious-container.avsc"), _write_hint=False)
    write(folder / "suspicious-container.r1.avsc", without_field(current, "terminal"))  # compatible
    write(folder / "suspicious-container.r2.avsc", with_field(current, {"name": "gone", "type": "long"}))
    code, output = bus("schema", "check", "--all", "--dir", str(folder))
    assert code == 1
    assert "ok   suspicious-container.avsc <-> suspicious-container.r1.avsc" in output
    assert "FAIL suspicious-container.avsc <-> suspicious-container.r2.avsc" in output
    assert "forward: field gone:" in output


def test_a_new_schema_is_checked_against_every_revision(folder: Path, tmp_path: Path) -> None:
    current = load_schema(str(folder / "suspicious-container.avsc"), _write_hint=False)
    write(folder / "suspicious-container.r1.avsc", retyped(current, "voyage", ["null", "long"]))
    new = with_field(raw("suspicious-container.avsc"), {"name": "x", "type": ["null", "int"], "default": None})
    code, output = bus("schema", "check", str(write(tmp_path / "new.avsc", new)), "--dir", str(folder))
    assert code == 1
    assert "<-> suspicious-container.avsc: backward and forward compatible" in output
    assert "<-> suspicious-container.r1.avsc (suspicious-container):" in output
    assert "field voyage" in output


def test_an_older_revision_must_be_self_contained(folder: Path) -> None:
    write(folder / "suspicious-container.r1.avsc", raw("suspicious-container.avsc"))  # refers to the header
    code, output = bus("schema", "check", "--all", "--dir", str(folder))
    assert code == 2 and "must inline every named type" in output


def test_a_misnamed_older_schema_is_refused(folder: Path) -> None:
    write(folder / "suspicious-container.v0.avsc", raw("suspicious-container.avsc"))
    code, output = bus("schema", "check", "--all", "--dir", str(folder))
    assert code == 2 and "must be named suspicious-container.r<N>.avsc" in output


def test_the_shared_header_file_is_not_an_older_schema() -> None:
    history = load_history(SHIPPED)
    assert sorted(history) == ["corruption-indicator", "operation-notice", "suspicious-container"]
    assert all(not h.older for h in history.values())
    files = {name for _, name in load_schemas(SHIPPED).fingerprints().values()}
    assert "eu.epa.bus.AlertHeader.avsc" not in files


def test_an_older_revision_is_decoded_and_resolved(folder: Path) -> None:
    """What the check promises holds in the codec: r1 data reads in the current shape."""
    import io

    from fastavro import schemaless_writer

    from bus.core.codec import MAGIC, crc64_fingerprint

    current = load_schema(str(folder / "suspicious-container.avsc"), _write_hint=False)
    old = without_field(current, "terminal")
    write(folder / "suspicious-container.r1.avsc", old)
    assert bus("schema", "check", "--all", "--dir", str(folder))[0] == 0
    schemas = load_schemas(folder)
    record = schemas.decode(schemas.encode("suspicious-container", _minimal_container()))[1]
    del record["terminal"]
    buf = io.BytesIO()
    schemaless_writer(buf, old, record)
    alert_type, decoded = schemas.decode(MAGIC + crc64_fingerprint(old) + buf.getvalue())
    assert alert_type == "suspicious-container"
    assert decoded == {**record, "terminal": None}


def _minimal_container() -> dict[str, Any]:
    from bus.core.models import parse_alert

    alert = parse_alert({"header": {"alert_type": "suspicious-container", "tlp": "AMBER",
                                    "source_reliability": "B", "information_assessment": "2",
                                    "summary": "test"},
                         "container_number": "MSCU1234566", "terminal": "ECT Delta"},
                        producer="NL-CUSTOMS", empact_codes=CODES)
    return alert.to_avro()
