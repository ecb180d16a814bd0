"""TAXII `next` cursors: where a client is in the feed, as Kafka offsets, and the query it pages.

A collection's objects come from the records of the member's feed topic. Each record
gives an ordered list of STIX objects (its `seq` 0, 1, ...). A page is read by merging
the partitions: every partition is read in offset order from where the cursor stands,
and the partition whose next record has the oldest Kafka timestamp goes first
(`heapq.merge` over the partitions' heads). So objects come in the order they reached
the feed, and a partition is never read out of offset order.

The cursor holds, per partition, the position of the next object to read: (offset,
seq). After a page, each partition's position is just past the last object taken from
it, so a position only ever moves forward, and everything before it was handed out.
Nothing is skipped because of timestamps: a record that was indexed late (a slow
partition) is still at or after its partition's position and comes in a later page.
The positions are the only state; the server keeps none.

A cursor also carries the query it continues (collection, `added_after`, the `match`
filters): a client may send `next` alone, as OpenCTI's connector does after the first
page, and still get the rest of the same query (the web layer decides what to do with a
cursor sent with filters that contradict it).

Encoding: `base64url(JSON)`, versioned, without padding. It is opaque to clients but not
secret; a forged cursor can only select records of this member's own feed, which the
same credentials may read anyway. Decoding checks every field and names what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from bus.errors import TaxiiRequestError

__all__ = [
    "MAX_CURSOR_CHARS",
    "Cursor",
    "Endpoint",
    "Page",
    "Position",
    "Query",
    "Row",
    "decode",
    "encode",
    "take_page",
]

VERSION = 1
MAX_CURSOR_CHARS = 8192
"""A longer `next` is refused before decoding (a cursor carries its query's filters)."""
MAX_FILTER_VALUES = 100
"""Values per `match[...]` filter: enough for any client we know, bounded for the cursor."""

Endpoint = Literal["objects", "manifest", "object", "versions"]
ENDPOINTS: tuple[Endpoint, ...] = ("objects", "manifest", "object", "versions")
"""`object` and `versions` page through one object's versions (by count: `skip`); the others by offsets."""


@dataclass(frozen=True, order=True)
class Position:
    """The next object to read in one partition: the record at `offset`, from its object `seq`."""

    offset: int = 0
    seq: int = 0


class Row(Protocol):
    """One STIX object of one feed record, as the merge needs to see it."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def seq(self) -> int: ...

    @property
    def timestamp_ms(self) -> int: ...


@dataclass(frozen=True)
class Query:
    """What a cursor continues: the endpoint, the collection and the filters of the first request."""

    endpoint: Endpoint
    collection: str
    added_after_us: int | None = None
    """Microseconds since the epoch: objects added strictly after it."""
    types: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    spec_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cursor:
    query: Query
    positions: tuple[tuple[int, Position], ...] = ()
    """(partition, position), sorted by partition; a partition not listed is read from its start."""
    skip: int = 0
    """For one object's versions: how many were handed out (versions are only ever added after)."""

    def position(self, partition: int) -> Position:
        return dict(self.positions).get(partition, Position())

    def advanced(self, rows: Iterable[Row]) -> Cursor:
        """The cursor after `rows` were taken: each partition just past its last row taken."""
        moved = dict(self.positions)
        for row in rows:
            after = Position(row.offset, row.seq + 1)
            if after > moved.get(row.partition, Position()):
                moved[row.partition] = after
        return replace(self, positions=tuple(sorted(moved.items())))

    def covers(self, row: Row) -> bool:
        """True if `row` is before this cursor (already handed out)."""
        return Position(row.offset, row.seq) < self.position(row.partition)


def encode(cursor: Cursor) -> str:
    q = cursor.query
    document: dict[str, Any] = {
        "v": VERSION, "e": q.endpoint, "c": q.collection,
        "p": [[p, pos.offset, pos.seq] for p, pos in cursor.positions],
    }
    for key, values in (("t", q.types), ("i", q.ids), ("ver", q.versions), ("sv", q.spec_versions)):
        if values:
            document[key] = list(values)
    if q.added_after_us is not None:
        document["aa"] = q.added_after_us
    if cursor.skip:
        document["s"] = cursor.skip
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bad(problem: str) -> TaxiiRequestError:
    return TaxiiRequestError("next", problem)


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _bad(f"{what} must be a non-negative integer")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if (not isinstance(value, list) or len(value) > MAX_FILTER_VALUES
            or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)):
        raise _bad(f"{what} must be a list of at most {MAX_FILTER_VALUES} short strings")
    return tuple(value)


def decode(text: str) -> Cursor:
    """The cursor `encode` wrote; TaxiiRequestError("next", why) for anything else."""
    if not text or len(text) > MAX_CURSOR_CHARS:
        raise _bad(f"not a cursor of this server (empty, or longer than {MAX_CURSOR_CHARS} characters)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad("not a cursor of this server (it must be passed on exactly as received)") from None
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise _bad("not a cursor of this server, or one of an older version: start again without next")
    endpoint = document.get("e")
    if endpoint not in ENDPOINTS:
        raise _bad("names no endpoint of this server")
    collection = document.get("c")
    if not isinstance(collection, str) or not 0 < len(collection) <= 128:
        raise _bad("names no collection")
    entries = document.get("p")
    if not isinstance(entries, list):
        raise _bad("has no partition positions")
    positions: dict[int, Position] = {}
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3:
            raise _bad("a partition position must be [partition, offset, seq]")
        partition, offset, seq = (_count(v, "a partition position") for v in entry)
        if partition in positions:
            raise _bad(f"partition {partition} is given twice")
        positions[partition] = Position(offset, seq)
    added_after = document.get("aa")
    query = Query(
        endpoint=endpoint,
        collection=collection,
        added_after_us=None if added_after is None else _count(added_after, "added_after"),
        types=_strings(document.get("t"), "match[type]"),
        ids=_strings(document.get("i"), "match[id]"),
        versions=_strings(document.get("ver"), "match[version]"),
        spec_versions=_strings(document.get("sv"), "match[spec_version]"),
    )
    unknown = set(document) - {"v", "e", "c", "p", "aa", "t", "i", "ver", "sv", "s"}
    if unknown:
        raise _bad("carries fields this server never writes")
    return Cursor(query, tuple(sorted(positions.items())), _count(document.get("s", 0), "skip"))


@dataclass(frozen=True)
class Page:
    """The rows taken for one page (in merge order) and whether more rows matched after them."""

    rows: tuple[Any, ...]
    counted: int
    more: bool
    cursor: Cursor = field(compare=False)


def _merge_key(row: Row) -> tuple[int, int, int, int]:
    return (row.timestamp_ms, row.partition, row.offset, row.seq)


def take_page(cursor: Cursor, streams: Iterable[Iterator[Any]], limit: int, *,
              counts: Callable[[Any], bool] = lambda row: True, max_rows: int | None = None) -> Page:
    """Merge the partitions' `streams` (each in (offset, seq) order, from the cursor's position)
    and take rows until `limit` of them `counts` (a row a page repeats, e.g. a marking definition
    every alert brings, does not count). `max_rows` bounds the rows looked at: a page may then be
    short, with `more` set. Rows before the cursor are ignored, so a stream may start early.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    taken: list[Any] = []
    counted = 0
    more = False
    merged = heapq.merge(*streams, key=_merge_key)
    for row in merged:
        if cursor.covers(row):
            continue
        if counted >= limit or (max_rows is not None and len(taken) >= max_rows):
            more = True
            break
        taken.append(row)
        if counts(row):
            counted += 1
    return Page(tuple(taken), counted, more, cursor.advanced(taken))

