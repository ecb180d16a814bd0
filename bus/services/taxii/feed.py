"""The member's feed as TAXII collections of STIX objects, paged by Kafka offsets.

One collection per alert type (suspicious containers, corruption indicators,
operation notices): a platform subscribes to the kinds it handles, and each
collection's objects are those of the feed's records of that type, in the order they
reached the feed. Only readable records are served: verified, or decrypted with the
member's key. A record that failed verification, or that stays encrypted, is never
turned into STIX.

Every record brings the objects `bus.interop.stix.alert_objects(alert).all` gives: the
extension and marking definitions it uses, then its own objects. So any page is
self-contained (a client starting mid-feed gets the TLP and handling markings its
objects refer to); a definition repeated within one page is sent once. Each object has
one version: its `modified`, else its `created`, and for container SCOs (which STIX does
not version) the alert's creation time. `date_added` is the record's Kafka timestamp.

Which objects a record maps to is listed in the feed index (`FeedIndex.store_stix`) by
`catch_up`, in record order; the objects are made again from the alert when served.
Records not listed yet (the indexer got ahead) are not served, and neither is anything
after the first of them, so a cursor never moves past a record that was not served.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from bus.adapters.feed_index import FeedIndex, PendingAlert, StixFilter, StixRef, StixRow
from bus.core.codelists import EmpactCodeList
from bus.core.models import AlertType, parse_alert
from bus.interop.stix import alert_objects
from bus.services.taxii.cursor import Cursor, Query, take_page

log = structlog.get_logger("bus.taxii")

__all__ = [
    "MAPPING_VERSION",
    "STIX_MEDIA_TYPE",
    "Collection",
    "ManifestEntry",
    "ObjectsPage",
    "ServedObject",
    "StixFeed",
    "collections_for",
    "date_added",
    "micros",
    "taxii_timestamp",
]

MAPPING_VERSION = "1"
"""Bump when `bus.interop.stix` changes which objects an alert maps to (ids, order, versions):
the listing in the index is then made again."""
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
SPEC_VERSION = "2.1"
VERSION_WORDS = frozenset({"first", "last", "all"})
COLLECTION_NAMESPACE = uuid.UUID("5f0c0a3e-6b0e-4a43-9a1e-7b7c1fb0f5d2")
"""Collection ids are UUIDv5 of (feed topic, alert type) under this namespace: stable across restarts."""
MAX_ROWS_PER_PAGE_FACTOR = 50
"""A page looks at most this many objects per object it may return (repeated definitions are skipped)."""
CHUNK = 200
REQUEST_SECONDS = 2.0
"""How long a request lists pending records itself before answering (about 5 ms a record). Normally a
few records are pending; after enabling TAXII on a large index, pages say `more` until it caught up."""
OBJECT_CACHE = 2048

DESCRIPTIONS: dict[AlertType, str] = {
    AlertType.SUSPICIOUS_CONTAINER:
        "Suspicious containers: a grouping with an indicator (pattern on the container number), "
        "observed data and the container.",
    AlertType.CORRUPTION_INDICATOR:
        "Corruption indicators: a grouping and a note; the subject is a pseudonymised reference in the EPA "
        "extension, never an identity.",
    AlertType.OPERATION_NOTICE:
        "Operation notices: a report on an epa-operation object and the containers under it.",
}


@dataclass(frozen=True)
class Collection:
    id: str
    alert_type: AlertType
    description: str

    @property
    def title(self) -> str:
        """The alert type (`suspicious-container`): no dots, so OpenCTI's `root.collection` works."""
        return self.alert_type.value

    def names(self, text: str) -> bool:
        """True if a URL's collection segment is this collection (its id, or its title as an alias)."""
        return text in (self.id, self.title)


def collections_for(topic: str) -> tuple[Collection, ...]:
    return tuple(
        Collection(str(uuid.uuid5(COLLECTION_NAMESPACE, f"{topic}/{t.value}")), t, DESCRIPTIONS[t])
        for t in AlertType
    )


def taxii_timestamp(micros: int) -> str:
    """A TAXII timestamp (microsecond precision, UTC, "Z", as TAXII 2.1 requires): 2026-11-30T09:38:35.123000Z."""
    when = datetime.fromtimestamp(micros // 1_000_000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{micros % 1_000_000:06d}Z"


def date_added(timestamp_ms: int) -> str:
    """When a record's objects were added to the collection: its Kafka timestamp, as a TAXII timestamp."""
    return taxii_timestamp(timestamp_ms * 1000)


def micros(text: str) -> int:
    """A STIX or TAXII timestamp (any fraction, "Z" or an offset) in microseconds since the epoch."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


@dataclass(frozen=True)
class ServedObject:
    row: StixRow
    body: Mapping[str, Any]


@dataclass(frozen=True)
class ManifestEntry:
    id: str
    date_added: str
    version: str
    """The object's `modified`, else `created`, else (container SCOs) its alert's `created`, as STIX writes it."""
    media_type: str = STIX_MEDIA_TYPE


@dataclass(frozen=True)
class ObjectsPage:
    """What one request gets: objects (or manifest entries), whether more follow, and where from."""

    items: tuple[Any, ...]
    more: bool
    next: Cursor | None
    first_added_ms: int | None
    last_added_ms: int | None


def _empty() -> ObjectsPage:
    return ObjectsPage((), False, None, None, None)


class StixFeed:
    """TAXII's view of one member's feed index (thread-safe)."""

    def __init__(self, index: FeedIndex, empact_codes: EmpactCodeList) -> None:
        self.index = index
        self.codes = empact_codes
        self.collections = collections_for(index.topic)
        self._listing = threading.Lock()
        self._cache: OrderedDict[int, tuple[dict[str, Any], ...]] = OrderedDict()
        self._cache_lock = threading.Lock()
        index.use_stix_mapping(MAPPING_VERSION)

    def collection(self, text: str) -> Collection | None:
        return next((c for c in self.collections if c.names(text)), None)

    # -- listing what each record maps to ----------------------------------------------------

    def _objects(self, alert_json: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        alert = parse_alert(alert_json, empact_codes=self.codes)
        return tuple(json.loads(o.serialize()) for o in alert_objects(alert).all)

    def _refs(self, pending: PendingAlert) -> Sequence[StixRef] | None:
        """What a record maps to; None (and a log line) if the mapping cannot take its alert.

        Any failure counts (stix2 raises its own exception classes): one alert the mapping
        cannot take must not hold back every record after it."""
        try:
            objects = self._objects(json.loads(pending.alert_json))
            main = next(o for o in objects if o["type"] not in ("extension-definition", "marking-definition"))
            refs = []
            for seq, obj in enumerate(objects):
                version = str(obj.get("modified") or obj.get("created") or main["created"])
                refs.append(StixRef(seq, str(obj["id"]), str(obj["type"]), version, micros(version)))
        except Exception:
            log.exception("alert not mapped to STIX: not served over TAXII", record=pending.record_id)
            return None
        return refs

    def catch_up(self, budget: int = 1000, *, seconds: float | None = None, batch: int = 50) -> int:
        """List the objects of pending records, oldest first, until none is left, `budget` records
        are listed or `seconds` have passed; return how many were listed."""
        deadline = None if seconds is None else time.monotonic() + seconds
        done = 0
        with self._listing:
            while done < budget and (deadline is None or time.monotonic() < deadline):
                pending = self.index.stix_pending(min(batch, budget - done))
                if not pending:
                    break
                stored = self.index.store_stix({p: self._refs(p) for p in pending})
                if stored == 0:
                    break  # everything read was verified again meanwhile; the next call starts over
                done += stored
        return done

    def run(self, stop: threading.Event, wake: threading.Event, *, idle: float = 5.0) -> None:
        """List new records whenever `wake` is set (the indexer indexed some), until `stop`."""
        while not stop.is_set():
            wake.clear()
            try:
                while not stop.is_set() and self.catch_up(budget=50):
                    pass  # small batches: a request waiting for the lock gets it soon
            except Exception:  # keep serving what is listed; say why the rest is not
                log.exception("listing STIX objects failed")
                stop.wait(1.0)
            wake.wait(idle)

    # -- pages -------------------------------------------------------------------------------

    def _selection(self, collection: Collection, query: Query) -> StixFilter | None:
        """The index filter for a query, or None if it can match nothing."""
        if query.spec_versions and SPEC_VERSION not in query.spec_versions:
            return None
        versions: tuple[int, ...] = ()
        if query.versions and not VERSION_WORDS.intersection(query.versions):
            versions = tuple(micros(v) for v in query.versions)
        return StixFilter(
            alert_type=collection.alert_type.value,
            added_after_ms=None if query.added_after_us is None else query.added_after_us // 1000,
            types=query.types,
            ids=query.ids,
            versions_us=versions,
            below_record=self.index.stix_frontier(),
        )

    def _stream(self, partition: int, cursor: Cursor, selection: StixFilter) -> Iterator[StixRow]:
        position = cursor.position(partition)
        offset, seq = position.offset, position.seq
        while True:
            rows = self.index.stix_rows(partition, offset, seq, selection, limit=CHUNK)
            yield from rows
            if len(rows) < CHUNK:
                return
            offset, seq = rows[-1].offset, rows[-1].seq + 1

    def page(self, collection: Collection, cursor: Cursor, limit: int) -> ObjectsPage:
        """One page of `cursor.query` (objects or manifest) from where `cursor` stands."""
        self.catch_up(budget=100_000, seconds=REQUEST_SECONDS)
        with self.index.snapshot():
            selection = self._selection(collection, cursor.query)
            if selection is None:
                return _empty()
            partitions = sorted(set(self.index.stix_partitions()) | {p for p, _ in cursor.positions})
            seen: set[tuple[str, str]] = set()

            def first_in_page(row: StixRow) -> bool:
                key = (row.object_id, row.version)
                if key in seen:
                    return False
                seen.add(key)
                return True

            taken = take_page(cursor, (self._stream(p, cursor, selection) for p in partitions), limit,
                              counts=first_in_page, max_rows=limit * MAX_ROWS_PER_PAGE_FACTOR)
            behind = selection.below_record is not None  # records not listed yet: more will come
            seen.clear()
            # Ascending by date added, as TAXII wants; the merge already is, unless a partition's
            # timestamps step back. Stable: a record's objects stay in order, definitions first.
            rows = sorted((r for r in taken.rows if first_in_page(r)), key=lambda r: r.timestamp_ms)
            items: tuple[Any, ...]
            if cursor.query.endpoint == "manifest":
                items = tuple(ManifestEntry(r.object_id, date_added(r.timestamp_ms), r.version) for r in rows)
            else:
                items = tuple(self._bodies(rows))
        stamps = [r.timestamp_ms for r in rows]
        more = taken.more or behind
        return ObjectsPage(items, more, taken.cursor if more else None, min(stamps, default=None),
                           max(stamps, default=None))

    def versions(self, collection: Collection, cursor: Cursor, limit: int) -> ObjectsPage:
        """One object's versions in the collection (`object`: the objects, `versions`: their version
        strings), oldest first, each where it was first added; paged by count."""
        query = cursor.query
        self.catch_up(budget=100_000, seconds=REQUEST_SECONDS)
        with self.index.snapshot():
            selection = self._selection(collection, query)
            found = self.index.stix_versions(query.ids[0], selection) if selection is not None else []
            rows = found[cursor.skip:cursor.skip + limit]
            more = len(found) > cursor.skip + limit
            items: tuple[Any, ...]
            items = tuple(r.version for r in rows) if query.endpoint == "versions" else tuple(self._bodies(rows))
        stamps = [r.timestamp_ms for r in rows]
        return ObjectsPage(items, more, replace(cursor, skip=cursor.skip + len(rows)) if more else None,
                           min(stamps, default=None), max(stamps, default=None))

    def _bodies(self, rows: Sequence[StixRow]) -> Iterator[ServedObject]:
        """The objects of `rows`, made again from their records' alerts."""
        alerts = self.index.readable_alerts(r.record_id for r in rows)
        for row in rows:
            alert = alerts.get(row.record_id)
            if alert is None:
                continue
            objects = self._cached(row.record_id, alert)
            if row.seq < len(objects) and objects[row.seq]["id"] == row.object_id:
                yield ServedObject(row, objects[row.seq])
            else:  # the listing and the mapping disagree: never serve a wrong object
                log.error("STIX listing out of date", record=row.record_id, object_id=row.object_id)

    def _cached(self, record_id: int, alert: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        with self._cache_lock:
            found = self._cache.get(record_id)
            if found is not None:
                self._cache.move_to_end(record_id)
                return found
        objects = self._objects(alert)
        with self._cache_lock:
            self._cache[record_id] = objects
            while len(self._cache) > OBJECT_CACHE:
                self._cache.popitem(last=False)
        return objects


