"""Can a new alert schema still read old data, and old readers the new data?

Avro's schema resolution rules decide whether a reader schema can decode what
a writer schema wrote. A new version of an alert schema must work both ways
against every version still in circulation:

* backward: the new schema, as reader, resolves records written with each
  older schema (routers and readers that upgraded read old records);
* forward: each older schema, as reader, resolves records written with the
  new one (members that have not upgraded yet read new records).

The rules are applied by the Apache Avro project's own checker
(`avro.compatibility`, a port of Java's `SchemaCompatibility`); this module
turns its JSON-pointer locations into field paths (`header.expires`) and its
incompatibility kinds into the rule that was broken, so a schema author sees
which field to fix. Pure: schemas come in as parsed JSON (named types
inlined, as `fastavro.schema.load_schema` returns them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from bus.errors import InvalidInput


class Direction(StrEnum):
    BACKWARD = "backward"
    """The new schema reads data written with an older one."""
    FORWARD = "forward"
    """An older schema reads data written with the new one."""


RULES: dict[SchemaIncompatibilityType, str] = {
    SchemaIncompatibilityType.reader_field_missing_default_value:
        "the reader has a field the writer lacks, and no default for it",
    SchemaIncompatibilityType.type_mismatch:
        "the writer's type cannot be promoted to the reader's type",
    SchemaIncompatibilityType.missing_union_branch:
        "the reader's union has no branch for a type the writer may write",
    SchemaIncompatibilityType.missing_enum_symbols:
        "the writer has enum symbols the reader lacks, and the reader's enum has no default",
    SchemaIncompatibilityType.name_mismatch:
        "named types must have the same name (or the reader an alias for the writer's name)",
    SchemaIncompatibilityType.fixed_size_mismatch:
        "fixed types must have the same size",
}


@dataclass(frozen=True)
class Incompatibility:
    """One broken resolution rule, located in the reader schema."""

    direction: Direction
    field: str
    """Dotted field path in the reader schema (`header.expires`), `<record>` for the top."""
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.direction}: field {self.field}: {self.rule} ({self.detail})"


def _avro(schema: Any, what: str) -> avro.schema.Schema:
    try:
        return avro.schema.parse(json.dumps(schema))
    except (avro.errors.AvroException, ValueError, TypeError) as exc:
        raise InvalidInput(f"{what} is not a valid Avro schema: {exc}") from exc


def incompatibilities(reader: Any, writer: Any, direction: Direction) -> list[Incompatibility]:
    """Every rule broken when `reader` resolves data written with `writer`."""
    found: list[Incompatibility] = []
    _check(_avro(reader, "the reader schema"), _avro(writer, "the writer schema"), [], direction, found)
    return found


def _check(
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    path: list[str],
    direction: Direction,
    found: list[Incompatibility],
) -> None:
    """Walk records field by field ourselves, so each finding names its field; let
    Avro's checker judge everything else (types, unions, enums, arrays, maps)."""
    if (
        isinstance(reader, avro.schema.RecordSchema)
        and isinstance(writer, avro.schema.RecordSchema)
        and reader.name == writer.name
    ):
        writer_fields = writer.fields_dict
        for field in reader.fields:
            where = [*path, field.name]
            written = writer_fields.get(field.name) or next(
                (writer_fields[a] for a in field.props.get("aliases") or () if a in writer_fields), None
            )
            if written is not None:
                _check(field.type, written.type, where, direction, found)
            elif not field.has_default:
                side = "the new schema" if direction is Direction.FORWARD else "the older schema"
                found.append(Incompatibility(
                    direction, ".".join(where),
                    RULES[SchemaIncompatibilityType.reader_field_missing_default_value],
                    f"{side} (the writer) has no field {field.name!r}",
                ))
        return
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.incompatible:
        kind = result.incompatibilities[0]
        found.append(Incompatibility(
            direction, ".".join(path) or "<record>", RULES[kind], "; ".join(sorted(result.messages)),
        ))


def compare(new: Any, old: Any) -> list[Incompatibility]:
    """Both directions between a new schema and one older version; [] if compatible."""
    return [
        *incompatibilities(new, old, Direction.BACKWARD),
        *incompatibilities(old, new, Direction.FORWARD),
    ]
