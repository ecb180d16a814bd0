"""A routing task's local state: one SQLite file per task per router instance.

Task p's store holds the message ids routed in task p within the replay window, and
who received each (an acknowledgement is checked against it). Kafka's
`router.changelog` partition p is the durable copy; this file is a cache of it that
makes a restart cheap: it remembers `changelog_offset`, the next changelog offset
not yet applied, so a router that takes task p back reads only what changed since.

The router writes here only after a transaction committed, with the changelog
offsets of that transaction's records, in one SQLite transaction: the store is never
ahead of Kafka. WAL and `synchronous=NORMAL`: a power cut may lose the last writes,
which the next restore reads back from the changelog.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bus.errors import BusError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS routed (
    message_id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    producer TEXT NOT NULL,
    recipients TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS routed_created ON routed (created_ms);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class RoutedEntry:
    """One changelog record: key = message id, value = compact JSON of the rest."""

    message_id: str
    created_ms: int
    producer: str
    recipients: tuple[str, ...]

    def key(self) -> bytes:
        return self.message_id.encode("ascii")

    def value(self) -> bytes:
        return json.dumps({"created_ms": self.created_ms, "producer": self.producer,
                           "recipients": list(self.recipients)}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, key: bytes | None, value: bytes | None) -> RoutedEntry | None:
        """The entry of a changelog record; None for a tombstone or a record that is not one."""
        if key is None or value is None:
            return None
        try:
            doc = json.loads(value)
            return cls(key.decode("ascii"), int(doc["created_ms"]), str(doc["producer"]),
                       tuple(str(r) for r in doc["recipients"]))
        except (ValueError, KeyError, TypeError):
            return None


class TaskStore:
    """The store of one task; used from one thread (the router's loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BusError(f"cannot open the router's task store {path}: {exc}") from exc

    @property
    def changelog_offset(self) -> int:
        row = self._db.execute("SELECT v FROM meta WHERE k = 'changelog_offset'").fetchone()
        return int(row[0]) if row else 0

    def get(self, message_id: str) -> RoutedEntry | None:
        row = self._db.execute("SELECT created_ms, producer, recipients FROM routed WHERE message_id = ?",
                               (message_id,)).fetchone()
        if row is None:
            return None
        return RoutedEntry(message_id, int(row[0]), str(row[1]), tuple(json.loads(row[2])))

    def contains(self, message_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM routed WHERE message_id = ?", (message_id,)).fetchone() is not None

    def apply(self, entries: Iterable[RoutedEntry], next_offset: int) -> None:
        """Add entries and move `changelog_offset` forward, atomically."""
        db = self._db
        with self._transaction(next_offset):
            db.executemany(
                "INSERT OR REPLACE INTO routed (message_id, created_ms, producer, recipients) VALUES (?, ?, ?, ?)",
                [(e.message_id, e.created_ms, e.producer, json.dumps(list(e.recipients))) for e in entries])

    @contextlib.contextmanager
    def _transaction(self, next_offset: int) -> Iterator[None]:
        """One SQLite transaction that also moves the changelog position on (never back): the
        rows and the offset they were restored up to change together or not at all."""
        db = self._db
        db.execute("BEGIN")
        try:
            yield
            db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('changelog_offset', ?)",
                       (str(max(next_offset, self.changelog_offset)),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, message_ids: Iterable[str], next_offset: int) -> None:
        """Apply changelog tombstones."""
        db = self._db
        with self._transaction(next_offset):
            db.executemany("DELETE FROM routed WHERE message_id = ?", [(m,) for m in message_ids])

    def evict(self, horizon_ms: int) -> int:
        """Forget ids created before `horizon_ms` (out of the replay window); how many went."""
        return self._db.execute("DELETE FROM routed WHERE created_ms < ?", (horizon_ms,)).rowcount

    def reset(self) -> None:
        """Forget everything (the changelog this copied was recreated)."""
        self._db.executescript("DELETE FROM routed; DELETE FROM meta;")

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM routed").fetchone()[0])

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
