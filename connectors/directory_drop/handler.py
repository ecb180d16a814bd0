"""One dropped file -> rows of validated alerts with stable message ids."""

from __future__ import annotations

from typing import Any

from bus.adapters.schema_files import default_empact_codes
from bus.core.codelists import EmpactCodeList
from bus.core.models import parse_alert
from bus.errors import AlertValidationError, FileRejected
from connectors.directory_drop.config import DropSettings
from connectors.directory_drop.rows import RowProblem, csv_items, json_items, merge_defaults
from connectors.sdk.inbox import FileInfo, Row


class DropHandler:
    suffixes: tuple[str, ...] = (".json", ".jsonl", ".csv")

    def __init__(self, settings: DropSettings, member: str, *, empact_codes: EmpactCodeList | None = None) -> None:
        self.settings = settings
        self.member = member
        self.empact_codes = empact_codes or default_empact_codes()

    def read(self, info: FileInfo) -> list[Row]:
        is_csv = info.path.suffix.lower() == ".csv"
        items = csv_items(info.path, self.settings.csv) if is_csv else json_items(info.path)
        if not items:
            raise FileRejected(["no alerts in file"])
        return [self._row(info, index, where, data) for index, (where, data) in enumerate(items)]

    def _row(self, info: FileInfo, index: int, where: str, data: Any) -> Row:
        if isinstance(data, RowProblem):
            return Row(where, problems=[str(data)])
        if not isinstance(data, dict):
            return Row(where, problems=[f"expected a JSON object, got {type(data).__name__}"])
        data = merge_defaults(self.settings.defaults, data)
        header = data.get("header")
        alert_type = None
        if isinstance(header, dict):
            # Ids and creation time derive from the file, so a re-read after a crash gives the
            # same alerts; an id the source system chose itself is kept.
            header = {**header}
            header.setdefault("message_id", str(info.message_id(f"row:{index}")))
            header.setdefault("created", info.created.isoformat())
            data["header"] = header
            if header.get("alert_type") is None and self.settings.alert_type is not None:
                alert_type = self.settings.alert_type
        try:
            alert = parse_alert(data, empact_codes=self.empact_codes, alert_type=alert_type, producer=self.member)
            return Row(where, alert)
        except AlertValidationError as exc:
            return Row(where, problems=[f"{loc}: {message}" for loc, message in exc.errors])

    def already_applied(self, info: FileInfo) -> bool:
        return False

    def completed(self, info: FileInfo) -> None:
        """Stateless: nothing to commit beyond the move."""

    def describe(self, info: FileInfo, rows: list[Row]) -> str:
        """One row per alert of the file: the counts say it all."""
        return ""
