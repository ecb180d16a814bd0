"""Alert files -> located JSON objects (the CSV flavour maps columns to fields)."""

from __future__ import annotations

import csv
import io
from copy import deepcopy
from pathlib import Path
from typing import Any

from bus.adapters.alert_files import read_items
from bus.errors import AlertFileError, FileRejected
from connectors.directory_drop.config import CsvColumn, CsvSettings

MAX_FILE_BYTES = 64 * 1024 * 1024


class RowProblem(str):
    """A row that could not even be turned into an object (e.g. wrong cell count)."""


def json_items(path: Path) -> list[tuple[str, Any]]:
    """(where, object) per alert in a .json (object or array) or .jsonl file."""
    try:
        return [(item.where or "alert", item.data) for item in read_items(path)]
    except AlertFileError as exc:
        raise FileRejected(exc.problems) from None


def csv_items(path: Path, settings: CsvSettings | None) -> list[tuple[str, Any]]:
    """(where, nested dict) per CSV data row, through the configured column mapping."""
    if settings is None:
        raise FileRejected(["CSV files need a `directory_drop.csv.columns` mapping in the connector config"])
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FileRejected([f"file is larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = path.read_bytes().decode(settings.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise FileRejected([f"not {settings.encoding} text: {exc}"]) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=settings.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise FileRejected(["empty file: a header row is required"]) from None
    except csv.Error as exc:
        raise FileRejected([f"line 1: {exc}"]) from None
    mapping = [settings.column(name) for name in header]
    problems = [f"column {name!r} is not mapped (map it, or set csv.ignore_unmapped: true)"
                for name, spec in zip(header, mapping, strict=True)
                if spec is None and name.strip() and not settings.ignore_unmapped]
    present = {name.strip().lower() for name in header}
    problems += [f"required column {name!r} is missing from the header row"
                 for name, spec in settings.columns.items()
                 if isinstance(spec, CsvColumn) and spec.required and name.strip().lower() not in present]
    if problems:
        raise FileRejected(problems)
    items: list[tuple[str, Any]] = []
    row_number = 0
    line = reader.line_num + 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            row_number += 1
            where = f"row {row_number} (line {start})"
            if len(cells) != len(header):
                items.append((where, RowProblem(f"has {len(cells)} cells, the header has {len(header)}")))
                continue
            data: dict[str, Any] = {}
            for cell, spec in zip(cells, mapping, strict=True):
                if spec is None or not cell.strip():
                    continue
                value: Any = cell.strip()
                if spec.list:
                    separator = spec.separator or settings.list_separator
                    value = [part.strip() for part in value.split(separator) if part.strip()]
                set_path(data, spec.field, value)
            items.append((where, data))
    except csv.Error as exc:
        raise FileRejected([f"line {reader.line_num}: {exc}"]) from None
    return items


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """data["header"]["tlp"] = value for path "header.tlp"."""
    *parents, leaf = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def merge_defaults(defaults: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`defaults` under `data`: values from the row win, nested mappings merge."""
    merged = deepcopy(defaults)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_defaults(merged[key], value)
        else:
            merged[key] = value
    return merged
