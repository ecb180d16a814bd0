"""The schema folder as a history: each alert type's current schema and its older revisions.

File names (docs/wire-format.md, "Schemas"): `<alert-type>.avsc` is the current
schema, `<alert-type>.r<N>.avsc` the N-th older revision (self-contained: every
named type inlined as it was then), and any other `<full.Name>.avsc` a shared
named type such as `eu.epa.bus.AlertHeader.avsc`, loaded where referenced.
`bus schema check` reads the folder through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.repository.flat_dict import FlatDictRepository
from fastavro.schema import load_schema

from bus.errors import InvalidInput

CURRENT_FILE = re.compile(r"(?P<type>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)\.avsc")
REVISION_FILE = re.compile(r"(?P<type>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)\.r(?P<revision>[1-9][0-9]*)\.avsc")


@dataclass(frozen=True)
class SchemaFile:
    path: Path
    schema: Any
    """Parsed JSON with every named type inlined (what fingerprints and resolution see)."""
    revision: int | None
    """None for the current schema, N for `<type>.rN.avsc`."""

    @property
    def label(self) -> str:
        return self.path.name


@dataclass
class TypeHistory:
    alert_type: str
    current: SchemaFile
    older: list[SchemaFile] = field(default_factory=list)

    @property
    def next_revision(self) -> int:
        return max((f.revision or 0 for f in self.older), default=0) + 1


class _WithCandidate(AbstractSchemaRepository):
    """The folder's files, plus one schema that lives elsewhere (a candidate)."""

    def __init__(self, folder: Path, name: str, text: str) -> None:
        self._folder = FlatDictRepository(str(folder))  # type: ignore[no-untyped-call]
        self._name, self._text = name, text

    def load(self, name: str) -> Any:
        if name == self._name:
            try:
                return json.loads(self._text)
            except json.JSONDecodeError as exc:
                raise SchemaRepositoryError(f"not JSON: {exc}") from exc
        return self._folder.load(name)  # type: ignore[no-untyped-call]


def _load(path: Path, folder: Path | None) -> Any:
    """Parse `path`, resolving named types from `folder` (None: the file must be self-contained)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read schema {path}: {exc.strerror or exc}") from None
    name = "\x00candidate"
    repo = _WithCandidate(folder if folder is not None else Path("/nonexistent"), name, text)
    try:
        return load_schema(name, repo=repo, _write_hint=False)
    except Exception as exc:  # fastavro raises many kinds for a bad file
        hint = "" if folder is not None else (
            " (an older revision must inline every named type it uses, as it was then)"
        )
        raise InvalidInput(f"cannot load Avro schema {path}: {exc}{hint}") from None


def load_history(folder: Path) -> dict[str, TypeHistory]:
    """Every alert type in `folder` with its current schema and older revisions (oldest first)."""
    if not folder.is_dir():
        raise InvalidInput(f"schema folder {folder} does not exist")
    histories: dict[str, TypeHistory] = {}
    files = sorted(folder.glob("*.avsc"))
    for path in files:
        if m := CURRENT_FILE.fullmatch(path.name):
            histories[m["type"]] = TypeHistory(m["type"], SchemaFile(path, _load(path, folder), None))
    for path in files:
        if m := REVISION_FILE.fullmatch(path.name):
            history = histories.get(m["type"])
            if history is None:
                raise InvalidInput(f"{path.name} is a revision of {m['type']}, which has no {m['type']}.avsc")
            history.older.append(SchemaFile(path, _load(path, None), int(m["revision"])))
        elif not CURRENT_FILE.fullmatch(path.name) and path.name.split(".")[0] in histories:
            raise InvalidInput(
                f"{path.name}: an older schema of {path.name.split('.')[0]} must be named "
                f"{path.name.split('.')[0]}.r<N>.avsc (N = 1, 2, ...); readers would ignore this file"
            )
    for history in histories.values():
        history.older.sort(key=lambda f: f.revision or 0)
    if not histories:
        raise InvalidInput(f"no <alert-type>.avsc schemas in {folder}")
    return histories


def load_candidate(path: Path, folder: Path) -> Any:
    """A proposed new schema, wherever it lives, resolving shared named types from `folder`."""
    return _load(path, folder)


def full_name(schema: Any) -> str | None:
    """The record's full name (`eu.epa.bus.SuspiciousContainerAlert`), if it is a named record."""
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
        return None
    name: str = schema["name"]
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
