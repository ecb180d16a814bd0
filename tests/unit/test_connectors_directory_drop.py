"""directory-drop without Kafka: file formats, CSV mapping, row errors, stable ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.directory_drop.config import CsvSettings, DropSettings
from connectors.directory_drop.handler import DropHandler
from connectors.directory_drop.rows import merge_defaults
from connectors.sdk.inbox import FileInfo, FileRejected
from tests.helpers import EXAMPLES

MEMBER = "BE-CUSTOMS"
HEADER_DEFAULTS = {"header": {"tlp": "AMBER", "source_reliability": "B", "information_assessment": "3"}}
CSV_COLUMNS = {
    "Container": "container_number",
    "Port of loading": "port_of_loading",
    "Seals": {"field": "seal_numbers", "list": True},
    "Indicators": {"field": "risk_indicators", "list": True},
    "Summary": "header.summary",
    "TLP": "header.tlp",
}


def handler(tmp_path: Path, **overrides) -> DropHandler:
    overrides.setdefault("csv", CsvSettings(columns=CSV_COLUMNS))
    settings = DropSettings(inbox=tmp_path, alert_type="suspicious-container", defaults=HEADER_DEFAULTS,
                            **overrides)
    return DropHandler(settings, MEMBER)


def info(path: Path) -> FileInfo:
    return FileInfo(path, "ab" * 32, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime.now(UTC))


def example_line(**changes) -> str:
    data = json.loads((EXAMPLES / "suspicious-container.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k != "producer"}
    data.update(changes)
    return json.dumps(data)


def test_jsonl_rows_get_stable_ids_and_creation_time(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(example_line() + "\n\n" + example_line(container_number="MSKU9070323") + "\n")
    seen = info(path)
    first = handler(tmp_path).read(seen)
    again = handler(tmp_path).read(seen)
    assert [r.where for r in first] == ["line 1", "line 3"]
    ids = [str(r.alert.header.message_id) for r in first]
    assert ids == [str(r.alert.header.message_id) for r in again] and len(set(ids)) == 2
    assert all(r.alert.header.producer == MEMBER for r in first)
    assert first[0].alert.header.created == again[0].alert.header.created


def test_a_message_id_chosen_by_the_source_is_kept(tmp_path):
    path = tmp_path / "a.json"
    data = json.loads(example_line())
    data["header"]["message_id"] = "019a0000-0000-7000-8000-000000000001"
    path.write_text(json.dumps([data]))
    [row] = handler(tmp_path).read(info(path))
    assert str(row.alert.header.message_id) == "019a0000-0000-7000-8000-000000000001"


def test_invalid_rows_name_the_row_and_field(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([example_line(), example_line(container_number="CSQU3054384"), "[1, 2]"]) + "\n")
    rows = handler(tmp_path).read(info(path))
    assert rows[0].alert is not None and not rows[0].problems
    assert rows[1].where == "line 2" and rows[1].problems[0].startswith("container_number: ")
    assert rows[2].problems == ["expected a JSON object, got list"]


def test_unreadable_files_are_rejected_as_a_whole(tmp_path):
    broken = tmp_path / "b.jsonl"
    broken.write_text(example_line() + "\n{oops\n")
    with pytest.raises(FileRejected, match="line 2: invalid JSON"):
        handler(tmp_path).read(info(broken))
    empty = tmp_path / "e.json"
    empty.write_text("[]")
    with pytest.raises(FileRejected, match="no alerts"):
        handler(tmp_path).read(info(empty))


def test_csv_mapping_with_list_columns(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "Container,Port of loading,Seals,Indicators,Summary,TLP\n"
        'CSQU3054383,ECGYE,EC4471920; EC4471921,cover-load;seal-tampering,"Bananas, 1,840 kg over",RED\n'
        "MSKU9070323,,,,Empty cells are left out,\n"
    )
    rows = handler(tmp_path).read(info(path))
    assert [r.where for r in rows] == ["row 1 (line 2)", "row 2 (line 3)"]
    first = rows[0].alert
    assert first.seal_numbers == ["EC4471920", "EC4471921"]
    assert [i.value for i in first.risk_indicators] == ["cover-load", "seal-tampering"]
    assert first.header.tlp.value == "RED" and first.header.summary == "Bananas, 1,840 kg over"
    second = rows[1].alert
    assert second.port_of_loading is None and second.header.tlp.value == "AMBER"  # from defaults


def test_csv_problems_are_reported_per_row_or_for_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Container,Port of loading,Seals,Indicators,Summary,TLP\n"
                    "CSQU3054384,ECGYE,,,x,AMBER\n"
                    "MSKU9070323,ECGYE\n")
    rows = handler(tmp_path).read(info(path))
    assert rows[0].where == "row 1 (line 2)" and "container_number" in rows[0].problems[0]
    assert rows[1].problems == ["has 2 cells, the header has 6"]

    unmapped = tmp_path / "unmapped.csv"
    unmapped.write_text("Container,Colour\nCSQU3054383,red\n")
    with pytest.raises(FileRejected) as caught:
        handler(tmp_path).read(info(unmapped))
    assert caught.value.problems == ["column 'Colour' is not mapped (map it, or set csv.ignore_unmapped: true)"]


def test_mapped_columns_are_optional_unless_required(tmp_path):
    """An export without the optional columns (seals, indicators, TLP...) is read as it is."""
    path = tmp_path / "short.csv"
    path.write_text("container ,SUMMARY\nCSQU3054383,Bananas over weight\n")
    [row] = handler(tmp_path).read(info(path))
    assert row.problems == [] and row.alert.container_number == "CSQU3054383"
    assert row.alert.seal_numbers == [] and row.alert.header.tlp.value == "AMBER"  # from defaults

    # Leaving out a column the alert cannot do without fails each row, naming the field.
    no_container = tmp_path / "no-container.csv"
    no_container.write_text("Summary,TLP\nBananas over weight,RED\n")
    [row] = handler(tmp_path).read(info(no_container))
    assert row.alert is None and row.problems == ["container_number: required field is missing"]

    # `required: true` makes that a file-level rejection that names the column.
    strict = handler(tmp_path, csv=CsvSettings(columns={
        **CSV_COLUMNS, "Container": {"field": "container_number", "required": True}}))
    with pytest.raises(FileRejected) as caught:
        strict.read(info(no_container))
    assert caught.value.problems == ["required column 'Container' is missing from the header row"]


def test_csv_needs_a_mapping(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("Container\nCSQU3054383\n")
    settings = DropSettings(inbox=tmp_path, alert_type="suspicious-container")
    with pytest.raises(FileRejected, match=r"csv\.columns"):
        DropHandler(settings, MEMBER).read(info(path))


def test_defaults_merge_under_rows():
    merged = merge_defaults({"header": {"tlp": "AMBER", "countries": ["BE"]}, "x": 1},
                            {"header": {"tlp": "RED"}, "y": 2})
    assert merged == {"header": {"tlp": "RED", "countries": ["BE"]}, "x": 1, "y": 2}
