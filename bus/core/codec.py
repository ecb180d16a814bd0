"""Avro Single Object Encoding (SOE) with a schema set indexed by fingerprint.

A value is `C3 01` + the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's Parsing Canonical Form + the Avro binary body. The fingerprint
lets a reader pick the exact writer schema without a schema registry: every
member ships the same `schemas/avro` folder. Layout: docs/wire-format.md.

Schema files: `<alert-type>.avsc` is the current schema of that alert type
(used to encode and as reader schema); `<alert-type>.r<N>.avsc` (e.g.
`suspicious-container.r1.avsc`) is an older revision that is still decoded and
resolved to the current one; it must inline its named types, as references
resolve to the current files. Other files (shared named types such as
`eu.epa.bus.AlertHeader.avsc`) are only loaded when a schema references them.
Files named after a full Avro name in the bus namespace (`eu.epa.bus.<Name>.avsc`)
are never alert types nor older alert schemas: `eu.epa.bus.EncryptedAlert.avsc`
is the encrypted-alert wrapper (`bus.core.confidential`), a value of its own with
its own fingerprint.

The core reads no files: `SchemaSet.from_texts` takes the files' names and
JSON texts, which `bus.adapters.schema_files` reads from the shipped folder
(or `$BUS_SCHEMAS_DIR`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form

from bus.errors import BusError, SchemaError

MAGIC = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE

_ALERT_FILE = re.compile(r"(?P<type>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?P<version>\.r[1-9][0-9]*)?\.avsc")
NAMESPACE = "eu.epa.bus"
"""Files named `<NAMESPACE>.<Name>.avsc` hold named types, never alert schemas."""
ENCRYPTED_ALERT = f"{NAMESPACE}.EncryptedAlert"
"""Full name (and file stem) of the encrypted-alert wrapper schema."""


def crc64_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, as the 8 bytes SOE carries.

    fastavro returns the hex of the little-endian bytes (like Java's
    `SchemaNormalization.fingerprint64` written little-endian), which is what
    the Avro spec puts on the wire; tests pin this against the spec's vector.
    """
    return bytes.fromhex(avro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class _Texts(AbstractSchemaRepository):
    """fastavro's schema repository over texts in memory: a reference to a named type
    `eu.epa.bus.AlertHeader` loads `eu.epa.bus.AlertHeader.avsc`, exactly as fastavro's
    own folder repository would, so fingerprints do not depend on where texts came from."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self._texts = texts

    def load(self, name: str) -> Any:
        file_name = f"{name}.avsc"
        if file_name not in self._texts:
            raise SchemaRepositoryError(f"no schema file {file_name}")
        try:
            return json.loads(self._texts[file_name])
        except json.JSONDecodeError as exc:
            raise SchemaRepositoryError(f"{file_name} is not JSON: {exc}") from exc


@dataclass(frozen=True)
class _Writer:
    alert_type: str
    path: PurePosixPath  # the schema file's name (no file is read: it names the schema in messages)
    schema: Any
    fingerprint: bytes
    current: bool


class SchemaSet:
    """All alert schemas of one folder, parsed once and indexed by fingerprint.

    Build it with `from_texts` (file name -> JSON text); `origin` says where the
    texts came from, for error messages.
    """

    def __init__(self, texts: Mapping[str, str], *, origin: str = "<memory>") -> None:
        self.origin = origin
        self._repository = _Texts(dict(texts))
        self._current: dict[str, _Writer] = {}
        self._by_fingerprint: dict[bytes, _Writer] = {}
        self._encrypted: _Writer | None = None
        names = sorted(n for n in texts if n.endswith(".avsc") and not n.startswith(NAMESPACE + "."))
        current = [n for n in names if (m := _ALERT_FILE.fullmatch(n)) and not m["version"]]
        for name in current:
            self._add(name, name.removesuffix(".avsc"), current=True)
        for name in names:
            m = _ALERT_FILE.fullmatch(name)
            if m and m["version"] and m["type"] in self._current:
                self._add(name, m["type"], current=False)
        if not self._current:
            raise BusError(f"no <alert-type>.avsc schemas in {origin}")
        wrapper = f"{ENCRYPTED_ALERT}.avsc"
        if wrapper in texts:
            self._encrypted = self._load(wrapper, ENCRYPTED_ALERT, current=True)
            if self._encrypted.fingerprint in self._by_fingerprint:
                raise BusError(f"{wrapper} has the fingerprint of an alert schema")

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], *, origin: str = "<memory>") -> SchemaSet:
        """The set of `{file name: JSON text}`, e.g. every `*.avsc` of one folder."""
        return cls(texts, origin=origin)

    def _load(self, name: str, alert_type: str, *, current: bool) -> _Writer:
        try:
            schema = load_schema(name.removesuffix(".avsc"), repo=self._repository)
        except Exception as exc:
            raise BusError(f"cannot load Avro schema {self.origin}/{name}: {exc}") from exc
        return _Writer(alert_type, PurePosixPath(name), schema, crc64_fingerprint(schema), current)

    def _add(self, name: str, alert_type: str, *, current: bool) -> None:
        writer = self._load(name, alert_type, current=current)
        clash = self._by_fingerprint.get(writer.fingerprint)
        if clash is not None:
            if clash.alert_type != alert_type:
                raise BusError(f"{name} and {clash.path.name} have the same fingerprint")
            return  # an old copy identical to the current schema adds nothing
        self._by_fingerprint[writer.fingerprint] = writer
        if current:
            self._current[alert_type] = writer

    @property
    def alert_types(self) -> frozenset[str]:
        return frozenset(self._current)

    def schema(self, alert_type: str) -> Any:
        """The current parsed schema of an alert type."""
        return self._writer(alert_type).schema

    def fingerprint(self, alert_type: str) -> bytes:
        """The 8 fingerprint bytes of the current schema of an alert type."""
        return self._writer(alert_type).fingerprint

    def fingerprints(self) -> dict[bytes, tuple[str, str]]:
        """Every known fingerprint -> (alert type, schema file name)."""
        return {fp: (w.alert_type, w.path.name) for fp, w in self._by_fingerprint.items()}

    def _writer(self, alert_type: str) -> _Writer:
        try:
            return self._current[alert_type]
        except KeyError:
            raise SchemaError(f"no schema for alert type {alert_type!r}") from None

    def encode(self, alert_type: str, record: dict[str, Any]) -> bytes:
        """SOE bytes of `record` under the current schema of `alert_type`."""
        return self._write(self._writer(alert_type), record, alert_type)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(alert type, record in the shape of the current schema) from SOE bytes.

        An encrypted alert is not an alert value: it is refused here (`is_encrypted` tells
        the two apart; `decode_encrypted` reads it).
        """
        fp = _soe_fingerprint(data)
        writer = self._by_fingerprint.get(fp)
        if writer is None:
            if self._encrypted is not None and fp == self._encrypted.fingerprint:
                raise SchemaError(
                    "value is an encrypted alert: verify it with bus.core.confidential.unseal_any "
                    "and decrypt it with a recipient's key"
                )
            raise SchemaError(f"unknown schema fingerprint {fp.hex()}")
        reader = None if writer.current else self._current[writer.alert_type].schema
        return writer.alert_type, self._read(writer, data, reader)

    # -- the encrypted-alert wrapper (bus.core.confidential) --------------------------------

    @property
    def encrypted_schema(self) -> Any:
        """The parsed `eu.epa.bus.EncryptedAlert` schema (SchemaError if this folder lacks it)."""
        return self._wrapper().schema

    @property
    def encrypted_fingerprint(self) -> bytes:
        return self._wrapper().fingerprint

    def _wrapper(self) -> _Writer:
        if self._encrypted is None:
            raise SchemaError(
                f"no {ENCRYPTED_ALERT}.avsc in {self.origin}: encrypted alerts are not supported"
            )
        return self._encrypted

    def is_encrypted(self, data: bytes) -> bool:
        """Whether SOE bytes carry the encrypted-alert fingerprint (a peek; nothing verified)."""
        return (
            self._encrypted is not None
            and len(data) >= HEADER_SIZE
            and bytes(data[:2]) == MAGIC
            and bytes(data[2:HEADER_SIZE]) == self._encrypted.fingerprint
        )

    def encode_encrypted(self, record: dict[str, Any]) -> bytes:
        """SOE bytes of an `eu.epa.bus.EncryptedAlert` record."""
        return self._write(self._wrapper(), record, "encrypted alert")

    @staticmethod
    def _write(writer: _Writer, record: dict[str, Any], what: str) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(writer.fingerprint)
        try:
            # strict: a field the schema lacks would otherwise be dropped silently
            schemaless_writer(buf, writer.schema, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SchemaError(f"{what} record does not fit its schema: {exc}") from exc
        return buf.getvalue()

    def decode_encrypted(self, data: bytes) -> dict[str, Any]:
        """The `eu.epa.bus.EncryptedAlert` record of SOE bytes (SchemaError otherwise)."""
        writer = self._wrapper()
        fp = _soe_fingerprint(data)
        if fp != writer.fingerprint:
            raise SchemaError(f"not an encrypted alert: schema fingerprint {fp.hex()}")
        return self._read(writer, data, None)

    def _read(self, writer: _Writer, data: bytes, reader: Any) -> dict[str, Any]:
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(buf, writer.schema, reader)
        except Exception as exc:  # untrusted bytes: any decoder failure is a bad body
            raise SchemaError(
                f"{writer.alert_type} body does not decode ({type(exc).__name__}: {exc})"
            ) from None
        if buf.tell() != len(data):
            raise SchemaError(
                f"{len(data) - buf.tell()} trailing bytes after the {writer.alert_type} record"
            )
        if not isinstance(record, dict):
            raise SchemaError(f"{writer.path.name} is not a record schema")
        return record


def _soe_fingerprint(data: bytes) -> bytes:
    """The 8 fingerprint bytes of an SOE value, after checking its length and marker."""
    if len(data) < HEADER_SIZE:
        raise SchemaError(
            f"value is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte SOE header"
        )
    if data[:2] != MAGIC:
        raise SchemaError(
            f"not Avro single-object encoding: starts with {bytes(data[:2]).hex()}, "
            f"expected {MAGIC.hex()}"
        )
    return bytes(data[2:HEADER_SIZE])

