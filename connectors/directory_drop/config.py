"""directory-drop settings: the inbox, row defaults and the CSV column mapping."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from bus.core.models import AlertType
from connectors.sdk.config import ConnectorSettings, Section
from connectors.sdk.inbox import InboxSettings


class CsvColumn(Section):
    """Where one CSV column goes in the alert."""

    field: str = Field(description="Alert field path, e.g. container_number or header.tlp.")
    list: bool = Field(False, description="Split the cell into a list.")
    separator: str | None = Field(None, description="List separator (default: csv.list_separator).")
    required: bool = Field(False, description="Reject a file whose header row lacks this column. Otherwise "
                                              "a mapped column may be absent: its field is left out.")


class CsvSettings(Section):
    """How a CSV export maps to alert fields (header row required).

    Every column of a file must be mapped (unless `ignore_unmapped`); a mapped column may be
    absent from a file (unless `required`), since exports often leave optional ones out.
    Whether an alert is complete is the alert model's rule, checked per row, naming the field.
    """

    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    list_separator: str = ";"
    ignore_unmapped: bool = Field(False, description="Ignore columns not in `columns` instead of failing.")
    columns: dict[str, str | CsvColumn] = Field(description="CSV header -> alert field path (or CsvColumn).")

    @field_validator("columns")
    @classmethod
    def _not_empty(cls, value: dict[str, str | CsvColumn]) -> dict[str, str | CsvColumn]:
        if not value:
            raise ValueError("map at least one column")
        return value

    def column(self, header: str) -> CsvColumn | None:
        """The mapping for a header cell, matched case- and space-insensitively."""
        wanted = header.strip().lower()
        for name, spec in self.columns.items():
            if name.strip().lower() == wanted:
                return spec if isinstance(spec, CsvColumn) else CsvColumn(field=spec)
        return None


class DropSettings(InboxSettings):
    alert_type: AlertType | None = Field(None, description="Type of rows that do not say (required for CSV "
                                                           "unless a column maps to header.alert_type).")
    defaults: dict[str, Any] = Field(default_factory=dict,
                                     description="Merged under every row, e.g. {header: {tlp: AMBER}}.")
    csv: CsvSettings | None = None


class DirectoryDropSettings(ConnectorSettings):
    directory_drop: DropSettings
