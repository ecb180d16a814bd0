"""Read the data an alert is checked against: the Avro schemas and the EMPACT code list.

The core parses texts and never opens a file (`SchemaSet.from_texts`,
`parse_empact`); this adapter is where those texts come from. By default they
are the files shipped in the package (`bus.adapters.resources`). An operator can
point `BUS_SCHEMAS_DIR` or `BUS_CODELISTS_DIR` at other folders, e.g. to take
up a new EMPACT cycle before a new release of the bus.

Services, connectors and the CLI get both from here, through
`default_schemas()` and `default_empact_codes()`: each folder is read and
parsed once per process and shared.
"""

from __future__ import annotations

import os
from pathlib import Path

from bus.adapters.resources import Traversable, avro_schemas, code_lists
from bus.core.codec import SchemaSet
from bus.core.codelists import EMPACT_FILE, EmpactCodeList, parse_empact
from bus.errors import CodeListError, ConfigError

__all__ = [
    "CODELISTS_ENV",
    "SCHEMAS_ENV",
    "codelists_folder",
    "default_empact_codes",
    "default_schemas",
    "load_empact_codes",
    "load_schemas",
    "schemas_folder",
]

SCHEMAS_ENV = "BUS_SCHEMAS_DIR"
CODELISTS_ENV = "BUS_CODELISTS_DIR"

Folder = Traversable | Path | str


def _folder(folder: Folder) -> Traversable:
    return Path(folder) if isinstance(folder, str) else folder


def schemas_folder() -> Traversable:
    """`$BUS_SCHEMAS_DIR` if set, else the shipped `schemas/avro`."""
    env = os.environ.get(SCHEMAS_ENV)
    return Path(env) if env else avro_schemas()


def codelists_folder() -> Traversable:
    """`$BUS_CODELISTS_DIR` if set, else the shipped `schemas/codelists`."""
    env = os.environ.get(CODELISTS_ENV)
    return Path(env) if env else code_lists()


def load_schemas(folder: Folder) -> SchemaSet:
    """Every `*.avsc` file of `folder`, parsed into one `SchemaSet`."""
    where = _folder(folder)
    if not where.is_dir():
        raise ConfigError(f"schema folder {where} does not exist")
    try:
        texts = {f.name: f.read_text(encoding="utf-8") for f in where.iterdir() if f.name.endswith(".avsc")}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the schemas in {where}: {exc}") from exc
    return SchemaSet.from_texts(texts, origin=str(where))


def load_empact_codes(folder: Folder) -> EmpactCodeList:
    """`empact.yaml` of a code list folder, parsed and checked."""
    path = _folder(folder).joinpath(EMPACT_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CodeListError(f"cannot read EMPACT code list {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CodeListError(f"EMPACT code list {path} is not UTF-8 text: {exc}") from exc
    return parse_empact(text, source=str(path))


def default_schemas() -> SchemaSet:
    """The schema set every service uses: `schemas_folder()`, read once per process."""
    folder = schemas_folder()
    loaded = _schemas.get(str(folder))
    if loaded is None:
        loaded = _schemas[str(folder)] = load_schemas(folder)
    return loaded


def default_empact_codes() -> EmpactCodeList:
    """The EMPACT code list every service uses: `codelists_folder()`, read once per process."""
    folder = codelists_folder()
    loaded = _codes.get(str(folder))
    if loaded is None:
        loaded = _codes[str(folder)] = load_empact_codes(folder)
    return loaded


# Keyed by folder, so that a changed environment variable is honoured (tests, tools).
_schemas: dict[str, SchemaSet] = {}
_codes: dict[str, EmpactCodeList] = {}
