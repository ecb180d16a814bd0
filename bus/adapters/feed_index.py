"""The feed index: one member's feed topic, verified, searchable, in one SQLite file.

The console (and later a TAXII server) answers from here rather than from Kafka:
Kafka cannot search, and reading a whole feed for every page would be slow. The
index is a cache of the feed topic, never a source of truth:

- every record keeps its Kafka coordinates (topic, partition, offset, timestamp),
  its raw bytes, the verification verdict computed when it was indexed (and against
  which trust directory and keys: `checked_with`), and the alert as JSON;
- `positions` holds, per partition, the next offset to read; records and positions
  are written in one SQLite transaction, so after a crash the index resumes exactly
  where its content ends and a record is never indexed twice (coordinates are unique);
- deleting the file and starting again rebuilds it from the topic.

Search: SQLite FTS5 over the alerts' free text, and a `terms` table of exact
identifiers (`bus.core.alert_terms`) for container numbers, IMO numbers, bills of
lading, operation ids, ports, countries and handling codes. Related alerts are
those sharing an identity term, or naming each other in `related`.

The file holds decrypted alerts: it is created 0600 (SQLite gives its journal files
the same mode) and belongs on the member's own host, like its private keys.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from bus.core.alert_terms import IDENTITY_KINDS, Term, TermKind, normalise
from bus.errors import FeedIndexError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    record_key BLOB, record_value BLOB, record_headers TEXT NOT NULL,
    verdict TEXT NOT NULL, reason TEXT, detail TEXT, checked_with TEXT NOT NULL,
    message_id TEXT, alert_type TEXT, producer TEXT, created_ms INTEGER, expires_ms INTEGER,
    tlp TEXT, handling TEXT, h3_conditions TEXT, summary TEXT,
    header_json TEXT, alert_json TEXT, route_rules TEXT, claimed_json TEXT NOT NULL,
    UNIQUE (topic, partition, offset));
CREATE INDEX IF NOT EXISTS records_by_time ON records (timestamp_ms, id);
CREATE INDEX IF NOT EXISTS records_by_message ON records (message_id);
CREATE INDEX IF NOT EXISTS records_by_check ON records (checked_with);
CREATE TABLE IF NOT EXISTS terms (
    record_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, value, record_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_by_record ON terms (record_id);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS acknowledgements (
    id INTEGER PRIMARY KEY, record_id INTEGER NOT NULL, status TEXT NOT NULL, officer TEXT NOT NULL,
    note TEXT, at_ms INTEGER NOT NULL, outcome TEXT NOT NULL);
"""


class Verdict(StrEnum):
    """What verification said about a record, as the console shows it."""

    VERIFIED = "verified"
    """The producer's signature verified against the trust directory; a plain alert."""
    DECRYPTED = "decrypted"
    """Verified, and decrypted with this member's key."""
    SEALED = "sealed"
    """The signature verified, but the alert is encrypted and not readable with the keys given."""
    FAILED = "failed"
    """Must not be trusted: `reason` says why. Never shown as verified."""

    @property
    def trusted(self) -> bool:
        return self is not Verdict.FAILED


@dataclass(frozen=True)
class FeedEntry:
    """One feed record as the indexer hands it over: coordinates, bytes, verdict, findings."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[bytes, bytes | None], ...]
    verdict: Verdict
    checked_with: str
    reason: str | None = None
    detail: str | None = None
    header: Mapping[str, Any] | None = None
    """The alert's header as JSON (verified, decrypted), or the clear header (sealed)."""
    alert: Mapping[str, Any] | None = None
    """The whole alert as JSON, when readable."""
    terms: Sequence[Term] = ()
    text: str = ""
    route_rules: tuple[str, ...] | None = None
    """The rule ids the router says delivered it here (`bus_route_rule`); None: not recorded."""
    claimed: Mapping[str, str] = field(default_factory=dict)
    """What the record's headers claim (id, producer, type), shown for records that failed."""


@dataclass(frozen=True)
class RawRecord:
    """A stored record's bytes, for verifying it again (a new directory, another key)."""

    id: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[bytes, bytes | None], ...]


@dataclass(frozen=True)
class IndexedRecord:
    """A record as the index returns it."""

    id: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    verdict: Verdict
    reason: str | None
    detail: str | None
    message_id: str | None
    alert_type: str | None
    producer: str | None
    created: datetime | None
    expires: datetime | None
    tlp: str | None
    handling: tuple[str, ...]
    h3_conditions: str | None
    summary: str | None
    header: Mapping[str, Any] | None
    alert: Mapping[str, Any] | None
    route_rules: tuple[str, ...] | None
    claimed: Mapping[str, str]

    @property
    def received(self) -> datetime:
        """When the record reached the feed (its Kafka timestamp)."""
        return _time(self.timestamp_ms) or datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class FeedQuery:
    """Filters (each a set of allowed values: any of them; all filters together) and search."""

    alert_types: tuple[str, ...] = ()
    tlps: tuple[str, ...] = ()
    handling: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    producers: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str = ""
    """Free text: every whitespace-separated word or identifier must occur (prefix match)."""
    exact: tuple[Term, ...] = ()
    """Exact identifiers: every one must be a term of the record."""

    @property
    def empty(self) -> bool:
        return self == FeedQuery()


@dataclass(frozen=True)
class Acknowledgement:
    record_id: int
    status: str
    officer: str
    note: str | None
    at: datetime
    outcome: str


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(when.timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _headers_json(headers: Iterable[tuple[bytes, bytes | None]]) -> str:
    return json.dumps([[_b64(k), _b64(v)] for k, v in headers])


def _headers_from(text: str) -> tuple[tuple[bytes, bytes | None], ...]:
    return tuple((_unb64(k) or b"", _unb64(v)) for k, v in json.loads(text))


def fts_expression(text: str) -> str | None:
    """An FTS5 query in which every whitespace-separated chunk of `text` is a quoted phrase
    with prefix matching: user input can never be FTS syntax (NEAR, OR, column filters)."""
    printable = "".join(c if c.isprintable() else " " for c in text)  # NUL would end FTS5's string
    chunks = [c.replace('"', '""') for c in printable.split()]
    phrases = [f'"{c}"*' for c in chunks if any(ch.isalnum() for ch in c)]
    return " ".join(phrases) or None


class FeedIndex:
    """One member's feed index in one SQLite file (thread-safe: one connection per thread)."""

    def __init__(self, path: Path, topic: str) -> None:
        self.path = Path(path)
        self.topic = topic
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._create_private()
        try:
            self._db().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise FeedIndexError(f"cannot use feed index {self.path}: {exc}") from None
        with self._write() as db:
            found = dict(db.execute("SELECT k, v FROM meta").fetchall())
            if not found:
                db.executemany("INSERT INTO meta (k, v) VALUES (?, ?)",
                               [("schema_version", SCHEMA_VERSION), ("topic", topic)])
            elif found.get("topic") != topic:
                raise FeedIndexError(
                    f"feed index {self.path} holds topic {found.get('topic')!r}, not {topic!r}: "
                    "give each feed its own index file"
                )
            elif found.get("schema_version") != SCHEMA_VERSION:
                raise FeedIndexError(
                    f"feed index {self.path} has layout {found.get('schema_version')}, this version writes "
                    f"{SCHEMA_VERSION}: delete the file to rebuild it from Kafka"
                )

    def _create_private(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise FeedIndexError(f"cannot create feed index {self.path}: {exc.strerror or exc}") from None
        else:
            os.close(fd)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise FeedIndexError(f"cannot open feed index {self.path}: {exc}") from None
            db.row_factory = sqlite3.Row
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- writing -----------------------------------------------------------------------------

    def positions(self) -> dict[int, int]:
        """Next offset to read per partition of the topic (empty: start from the beginning)."""
        rows = self._db().execute("SELECT partition, next_offset FROM positions WHERE topic = ?", (self.topic,))
        return {int(p): int(o) for p, o in rows}

    def add(self, entries: Sequence[FeedEntry], positions: Mapping[int, int]) -> list[int]:
        """Store new records and the positions after them, atomically; return the new ids.

        A record already stored (same coordinates) is skipped, so reading a stretch of
        the topic twice changes nothing. Positions only move forward.
        """
        new: list[int] = []
        with self._write() as db:
            for entry in entries:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO records (topic, partition, offset, timestamp_ms, record_key, "
                    "record_value, record_headers, verdict, checked_with, claimed_json) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.topic, entry.partition, entry.offset, entry.timestamp_ms, entry.key, entry.value,
                     _headers_json(entry.headers), entry.verdict.value, entry.checked_with,
                     json.dumps(dict(entry.claimed))),
                )
                if cursor.rowcount:
                    record_id = int(cursor.lastrowid or 0)
                    self._set_findings(db, record_id, entry)
                    new.append(record_id)
            for partition, offset in positions.items():
                db.execute(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                    (self.topic, partition, offset),
                )
        return new

    @staticmethod
    def _set_findings(db: sqlite3.Connection, record_id: int, entry: FeedEntry) -> None:
        header = entry.header or {}
        handling = [str(h) for h in header.get("handling_codes") or []]
        db.execute(
            "UPDATE records SET verdict = ?, reason = ?, detail = ?, checked_with = ?, message_id = ?, "
            "alert_type = ?, producer = ?, created_ms = ?, expires_ms = ?, tlp = ?, handling = ?, "
            "h3_conditions = ?, summary = ?, header_json = ?, alert_json = ?, route_rules = ? WHERE id = ?",
            (
                entry.verdict.value, entry.reason, entry.detail, entry.checked_with,
                str(header["message_id"]) if "message_id" in header else None,
                header.get("alert_type"), header.get("producer"),
                _ms(header.get("created")), _ms(header.get("expires")), header.get("tlp"),
                json.dumps(handling), header.get("h3_conditions"), header.get("summary"),
                json.dumps(header, default=str) if entry.header is not None else None,
                json.dumps(entry.alert, default=str) if entry.alert is not None else None,
                json.dumps(list(entry.route_rules)) if entry.route_rules is not None else None,
                record_id,
            ),
        )
        db.execute("DELETE FROM terms WHERE record_id = ?", (record_id,))
        db.executemany("INSERT OR IGNORE INTO terms (record_id, kind, value) VALUES (?, ?, ?)",
                       [(record_id, t.kind.value, normalise(t.kind, t.value)) for t in entry.terms])
        db.execute("DELETE FROM fts WHERE rowid = ?", (record_id,))
        if entry.text:
            db.execute("INSERT INTO fts (rowid, body) VALUES (?, ?)", (record_id, entry.text))

    def stale(self, checked_with: str, limit: int = 200) -> list[RawRecord]:
        """Records verified against another directory or key set than `checked_with`."""
        rows = self._db().execute(
            "SELECT id, topic, partition, offset, timestamp_ms, record_key, record_value, record_headers "
            "FROM records WHERE checked_with != ? ORDER BY id LIMIT ?", (checked_with, limit))
        return [RawRecord(r["id"], r["topic"], r["partition"], r["offset"], r["timestamp_ms"], r["record_key"],
                          r["record_value"], _headers_from(r["record_headers"])) for r in rows]

    def recheck(self, updates: Mapping[int, FeedEntry]) -> None:
        """Replace the verdict and findings of stored records (after verifying them again)."""
        with self._write() as db:
            for record_id, entry in updates.items():
                self._set_findings(db, record_id, entry)

    # -- reading -----------------------------------------------------------------------------

    _COLUMNS = ("id, topic, partition, offset, timestamp_ms, record_key, verdict, reason, detail, message_id, "
                "alert_type, producer, created_ms, expires_ms, tlp, handling, h3_conditions, summary, "
                "header_json, alert_json, route_rules, claimed_json")

    @staticmethod
    def _record(row: sqlite3.Row) -> IndexedRecord:
        rules = row["route_rules"]
        return IndexedRecord(
            id=row["id"], topic=row["topic"], partition=row["partition"], offset=row["offset"],
            timestamp_ms=row["timestamp_ms"], key=row["record_key"], verdict=Verdict(row["verdict"]),
            reason=row["reason"], detail=row["detail"], message_id=row["message_id"],
            alert_type=row["alert_type"], producer=row["producer"], created=_time(row["created_ms"]),
            expires=_time(row["expires_ms"]), tlp=row["tlp"],
            handling=tuple(json.loads(row["handling"] or "[]")), h3_conditions=row["h3_conditions"],
            summary=row["summary"],
            header=json.loads(row["header_json"]) if row["header_json"] else None,
            alert=json.loads(row["alert_json"]) if row["alert_json"] else None,
            route_rules=tuple(json.loads(rules)) if rules is not None else None,
            claimed=json.loads(row["claimed_json"]),
        )

    def _where(self, query: FeedQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: tuple[str, ...]) -> None:
            if values:
                clauses.append(f"r.{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)

        def term_any(kind: TermKind, values: Iterable[str]) -> None:
            normal = [normalise(kind, v) for v in values]
            if normal:
                clauses.append("r.id IN (SELECT record_id FROM terms WHERE kind = ? AND value IN "
                               f"({', '.join('?' * len(normal))}))")
                params.extend([kind.value, *normal])

        any_of("alert_type", query.alert_types)
        any_of("tlp", query.tlps)
        any_of("producer", query.producers)
        term_any(TermKind.HANDLING, query.handling)
        term_any(TermKind.COUNTRY, query.countries)
        term_any(TermKind.PORT, query.ports)
        for term in query.exact:
            term_any(term.kind, [term.value])
        if query.created_from is not None:
            clauses.append("r.created_ms >= ?")
            params.append(_ms(query.created_from))
        if query.created_to is not None:
            clauses.append("r.created_ms < ?")
            params.append(_ms(query.created_to))
        expression = fts_expression(query.text)
        if expression is not None:
            clauses.append("r.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            params.append(expression)
        elif query.text.strip():
            clauses.append("0")  # only punctuation: nothing can match
        return (" AND ".join(clauses) or "1"), params

    def search(self, query: FeedQuery = FeedQuery(), *, limit: int = 100,
               before: tuple[int, int] | None = None) -> list[IndexedRecord]:
        """Newest first (by arrival on the feed); `before` = (timestamp_ms, id) of the last row seen."""
        where, params = self._where(query)
        if before is not None:
            where += " AND (r.timestamp_ms, r.id) < (?, ?)"
            params += list(before)
        rows = self._db().execute(
            f"SELECT {self._COLUMNS} FROM records r WHERE {where} ORDER BY r.timestamp_ms DESC, r.id DESC LIMIT ?",
            [*params, limit])
        return [self._record(r) for r in rows]

    def since(self, after_id: int, query: FeedQuery = FeedQuery(), *, limit: int = 500) -> list[IndexedRecord]:
        """Records indexed after `after_id` that match, oldest first (for a live page)."""
        where, params = self._where(query)
        rows = self._db().execute(
            f"SELECT {self._COLUMNS} FROM records r WHERE r.id > ? AND {where} ORDER BY r.id LIMIT ?",
            [after_id, *params, limit])
        return [self._record(r) for r in rows]

    def count(self, query: FeedQuery = FeedQuery()) -> int:
        where, params = self._where(query)
        return int(self._db().execute(f"SELECT count(*) FROM records r WHERE {where}", params).fetchone()[0])

    def last_id(self) -> int:
        return int(self._db().execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0])

    def get(self, partition: int, offset: int) -> IndexedRecord | None:
        row = self._db().execute(
            f"SELECT {self._COLUMNS} FROM records WHERE topic = ? AND partition = ? AND offset = ?",
            (self.topic, partition, offset)).fetchone()
        return self._record(row) if row else None

    def by_message_id(self, message_id: str) -> list[IndexedRecord]:
        """Trusted records with this message id first (a forged copy may claim it too)."""
        rows = self._db().execute(
            f"SELECT {self._COLUMNS} FROM records WHERE message_id = ? ORDER BY verdict = 'failed', id",
            (message_id.lower(),))
        return [self._record(r) for r in rows]

    def terms_of(self, record_id: int) -> list[Term]:
        rows = self._db().execute("SELECT kind, value FROM terms WHERE record_id = ? ORDER BY kind, value",
                                  (record_id,))
        return [Term(TermKind(k), v) for k, v in rows]

    def related(self, record: IndexedRecord, limit: int = 50) -> list[tuple[IndexedRecord, list[Term]]]:
        """Other trusted records about the same container, vessel, B/L, operation or subject,
        or that name this one in `related` (or are named by it); each with the shared terms."""
        mine = self.terms_of(record.id)
        identity = [t for t in mine if t.kind in IDENTITY_KINDS]
        links: dict[int, list[Term]] = {}
        db = self._db()
        for term in identity:
            for (other,) in db.execute("SELECT record_id FROM terms WHERE kind = ? AND value = ? AND record_id != ?",
                                       (term.kind.value, term.value, record.id)):
                links.setdefault(other, []).append(term)
        if record.message_id:
            for (other,) in db.execute("SELECT record_id FROM terms WHERE kind = 'related' AND value = ?",
                                       (record.message_id,)):
                links.setdefault(other, []).append(Term(TermKind.RELATED, record.message_id))
        for term in (t for t in mine if t.kind is TermKind.RELATED):
            for (other,) in db.execute("SELECT record_id FROM terms WHERE kind = 'message' AND value = ?",
                                       (term.value,)):
                links.setdefault(other, []).append(term)
        links.pop(record.id, None)
        if not links:
            return []
        ids = list(links)
        rows = db.execute(
            f"SELECT {self._COLUMNS} FROM records WHERE verdict != 'failed' AND id IN ({', '.join('?' * len(ids))}) "
            "ORDER BY timestamp_ms DESC LIMIT ?", [*ids, limit])
        return [(rec, links[rec.id]) for rec in map(self._record, rows)]

    def facets(self) -> dict[str, list[str]]:
        """Values present in the index, for the filter choices."""
        db = self._db()
        out: dict[str, list[str]] = {
            "producers": [p for (p,) in db.execute(
                "SELECT DISTINCT producer FROM records WHERE producer IS NOT NULL ORDER BY producer")],
        }
        for kind, name in ((TermKind.COUNTRY, "countries"), (TermKind.PORT, "ports")):
            out[name] = [v for (v,) in db.execute(
                "SELECT DISTINCT value FROM terms WHERE kind = ? ORDER BY value", (kind.value,))]
        return out

    def per_day(self, query: FeedQuery = FeedQuery()) -> list[tuple[str, str, int]]:
        """(UTC day, alert type, count) of the matching readable records, by creation day."""
        where, params = self._where(query)
        rows = self._db().execute(
            "SELECT strftime('%Y-%m-%d', r.created_ms / 1000, 'unixepoch') AS day, r.alert_type, count(*) "
            f"FROM records r WHERE r.created_ms IS NOT NULL AND {where} GROUP BY day, r.alert_type ORDER BY day",
            params)
        return [(d, t, int(n)) for d, t, n in rows]

    def port_counts(self, query: FeedQuery = FeedQuery(), limit: int = 12) -> list[tuple[str, int]]:
        """The ports the matching records involve, most frequent first."""
        where, params = self._where(query)
        rows = self._db().execute(
            "SELECT t.value, count(*) AS n FROM terms t JOIN records r ON r.id = t.record_id "
            f"WHERE t.kind = 'port' AND {where} GROUP BY t.value ORDER BY n DESC, t.value LIMIT ?",
            [*params, limit])
        return [(p, int(n)) for p, n in rows]

    # -- acknowledgements (a local log of what officers sent) --------------------------------

    def log_acknowledgement(self, record_id: int, status: str, officer: str, note: str | None,
                            outcome: str, at: datetime) -> None:
        with self._write() as db:
            db.execute("INSERT INTO acknowledgements (record_id, status, officer, note, at_ms, outcome) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (record_id, status, officer, note, _ms(at), outcome))

    def acknowledgements(self, record_id: int) -> list[Acknowledgement]:
        rows = self._db().execute(
            "SELECT record_id, status, officer, note, at_ms, outcome FROM acknowledgements "
            "WHERE record_id = ? ORDER BY id", (record_id,))
        return [Acknowledgement(r[0], r[1], r[2], r[3], _time(r[4]) or datetime.fromtimestamp(0, UTC), r[5])
                for r in rows]


__all__ = [
    "Acknowledgement",
    "FeedEntry",
    "FeedIndex",
    "FeedQuery",
    "IndexedRecord",
    "RawRecord",
    "Verdict",
    "fts_expression",
]
