"""Read alerts from .json (one object or an array) and .jsonl files.

Every problem is reported with its file, line (for JSON Lines) and field, and
all alerts are validated before anything is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.adapters.schema_files import default_empact_codes
from bus.core.codelists import EmpactCodeList
from bus.core.models import BaseAlert, parse_alert
from bus.errors import AlertFileError, AlertValidationError

MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LocatedItem:
    where: str  # "line 3" or "item 2" or "" for a single object
    data: Any


def read_items(path: Path) -> list[LocatedItem]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AlertFileError(path, [f"file is larger than {MAX_FILE_BYTES} bytes"])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertFileError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise AlertFileError(path, [f"not UTF-8 text: {exc}"]) from exc
    if path.suffix == ".jsonl":
        items, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(LocatedItem(f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
        if problems:
            raise AlertFileError(path, problems)
        return items
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AlertFileError(path, [f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from exc
    if isinstance(data, list):
        return [LocatedItem(f"item {i}", item) for i, item in enumerate(data)]
    return [LocatedItem("", data)]


def load_alerts(
    path: Path, *, alert_type: str | None, producer: str | None, empact_codes: EmpactCodeList | None = None
) -> list[BaseAlert]:
    """Parse and validate every alert in the file; raise with all problems at once.

    EMPACT priorities are checked against `empact_codes` (default: the bus's code list).
    """
    codes = empact_codes or default_empact_codes()
    alerts: list[BaseAlert] = []
    problems: list[str] = []
    items = read_items(path)
    if not items:
        raise AlertFileError(path, ["no alerts in file"])
    for item in items:
        prefix = f"{item.where}: " if item.where else ""
        if not isinstance(item.data, dict):
            problems.append(f"{prefix}expected a JSON object, got {type(item.data).__name__}")
            continue
        try:
            alerts.append(parse_alert(item.data, empact_codes=codes, alert_type=alert_type, producer=producer))
        except AlertValidationError as exc:
            problems += [f"{prefix}{loc}: {msg}" for loc, msg in exc.errors]
    if problems:
        raise AlertFileError(path, problems)
    return alerts


#: Header fields an exported alert must already have: without them it was never
#: signed on the bus, and an export could not lead back to a signed record.
RECORDED_FIELDS = ("message_id", "producer", "created")


@dataclass(frozen=True)
class RecordedAlerts:
    """Alerts read for export, and the `bus tail --json` records left out because they failed verification."""

    alerts: list[BaseAlert]
    unverified: list[str]


def load_recorded_alerts(path: Path, empact_codes: EmpactCodeList | None = None) -> RecordedAlerts:
    """Alerts as recorded on the bus, for export: plain alert objects or `bus tail --json` lines.

    Unlike `load_alerts`, nothing is filled in: a message id or creation time
    made up now would give the export ids that no signed record has.
    """
    codes = empact_codes or default_empact_codes()
    items = read_items(path)
    if not items:
        raise AlertFileError(path, ["no alerts in file"])
    alerts: list[BaseAlert] = []
    unverified: list[str] = []
    problems: list[str] = []
    for item in items:
        prefix = f"{item.where}: " if item.where else ""
        data = item.data
        if isinstance(data, dict) and "verified" in data and "topic" in data:  # a `bus tail --json` record
            if data["verified"] is not True or not isinstance(data.get("alert"), dict):
                where = f"{data.get('topic')}[{data.get('partition')}]@{data.get('offset')}"
                unverified.append(f"{prefix}{where} failed verification ({data.get('reason', 'unknown')})")
                continue
            data = data["alert"]
        if not isinstance(data, dict):
            problems.append(f"{prefix}expected a JSON object, got {type(data).__name__}")
            continue
        header = data.get("header")
        missing = [f for f in RECORDED_FIELDS if not isinstance(header, dict) or header.get(f) is None]
        if missing:
            problems += [
                f"{prefix}header.{field}: required for export (export alerts as read from the bus, "
                "e.g. `bus tail --json`, or from a Kafka topic)" for field in missing
            ]
            continue
        try:
            alerts.append(parse_alert(data, empact_codes=codes))
        except AlertValidationError as exc:
            problems += [f"{prefix}{loc}: {msg}" for loc, msg in exc.errors]
    if problems:
        raise AlertFileError(path, problems)
    return RecordedAlerts(alerts, unverified)
