"""What a file-based connector implements: turn one file into alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

from bus.core.models import BaseAlert
from connectors.sdk.stable_ids import stable_uuid7


@dataclass(frozen=True)
class FileInfo:
    """A file as first seen: its content hash and times make the message ids stable."""

    path: Path
    sha256: str
    mtime: datetime
    created: datetime  # when processing began; kept across restarts by the checkpoint

    def message_id(self, key: str) -> UUID:
        """The id of the alert at `key` (row index, message/container...) in this file."""
        return stable_uuid7(f"{self.sha256}:{key}", self.mtime)


@dataclass
class Row:
    """One alert-to-be: parsed, or the reasons it could not be."""

    where: str  # "line 3", "row 2 (line 3)", "message 1 (ref M1), container ABCU1234560"
    alert: BaseAlert | None = None
    problems: list[str] = field(default_factory=list)


class FileHandler(Protocol):
    suffixes: tuple[str, ...]

    def read(self, info: FileInfo) -> list[Row]:
        """Every row of the file, in order; must be deterministic for the same info."""
        ...

    def already_applied(self, info: FileInfo) -> bool:
        """True if a file with this exact content was completed before: the same file after a
        crash that came before the move, or a byte-identical copy dropped again."""
        ...

    def describe(self, info: FileInfo, rows: list[Row]) -> str:
        """What the file held besides its rows, for the verdict ("" if the rows say it all).

        A handler whose rows are not one per record of the file says so here, e.g. EDIFACT
        makes a row only for a container with findings: "3 containers read, 2 with findings".
        """
        ...

    def completed(self, info: FileInfo) -> None:
        """Every valid row was acknowledged by Kafka: commit any state derived from the file."""
        ...
