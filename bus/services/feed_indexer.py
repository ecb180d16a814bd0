"""Keep a member's feed index current: read the feed topic, verify, index, tell the pages.

The indexer reads every partition of the feed topic without a consumer group
(assigned partitions, read_committed), starting from the positions the index
stored, so the index itself is the only bookmark: delete it and the next start
reads the topic from its oldest retained record. Each poll's records and the
positions after them go into the index in one SQLite transaction.

It reads as whoever the engine's settings name: at a member's site that is the
member's own principal, and the broker's ACLs decide what it may read. A refusal
(`NotAuthorized`) is reported, never worked around.

When the trust directory or the member's decryption keys change, every stored
record is verified again from its stored bytes (no Kafka reads needed), so a
badge always reflects the directory in force.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

import structlog

from bus.adapters.feed_index import FeedEntry, FeedIndex
from bus.adapters.kafka.port import Consumer, Engine
from bus.adapters.kafka.records import OFFSET_BEGINNING, TopicPartition
from bus.errors import BusError, KafkaError, KafkaOperationFailed, NotAuthorized
from bus.services.feed_verdicts import FeedVerifier

log = structlog.get_logger("bus.console.indexer")

PROBE_SECONDS = 30.0
"""How long the broker may take to answer for a topic that is not listed (a fresh cluster creates
its offsets topic on the first group lookup)."""
PROBE_READ_SECONDS = 2.0
PROGRESS_EVERY = 2.0
"""Seconds between checks of how far behind the end of the topic the index is (idle polls)."""

Listener = Callable[[int], None]
"""Called with the highest record id after new records were indexed (or re-verified)."""


class IndexerState(StrEnum):
    STARTING = "starting"
    CATCHING_UP = "catching-up"
    LIVE = "live"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class IndexerStatus:
    state: IndexerState
    message: str
    since: datetime


class FeedIndexer:
    """Reads one feed topic into a `FeedIndex`. `step()` for tests, `run()` for a thread."""

    def __init__(
        self,
        engine: Engine,
        topic: str,
        index: FeedIndex,
        verifier: FeedVerifier,
        *,
        poll_timeout: float = 0.5,
        max_records: int = 500,
        rediscover_every: float = 30.0,
        max_backoff: float = 30.0,
        group_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.topic = topic
        self.index = index
        self.verifier = verifier
        self.poll_timeout = poll_timeout
        self.max_records = max_records
        self.rediscover_every = rediscover_every
        self.max_backoff = max_backoff
        self.group_id = group_id
        """Never joined nor committed to; a secured cluster still wants it under the member's prefix
        (`bus.core.topology.console_group`)."""
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None
        """Never assigned: it asks for offsets. Asked of the reading consumer, each request would
        wait behind its long-polled fetch (librdkafka: fetch.wait.max.ms, 0.5 s a partition)."""
        self._partitions: list[int] = []
        self._discovered_at = 0.0
        self._listeners: list[Listener] = []
        self._progress_at = 0.0
        self._lock = threading.Lock()
        self._status = IndexerStatus(IndexerState.STARTING, "connecting to Kafka", datetime.now(UTC))

    # -- observers ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(last_id)` after each batch; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        last = self.index.last_id()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(last)
            except Exception:  # a page that went away must not stop indexing
                log.debug("listener failed", exc_info=True)

    @property
    def status(self) -> IndexerStatus:
        return self._status

    def _set(self, state: IndexerState, message: str) -> None:
        if state != self._status.state or message != self._status.message:
            self._status = IndexerStatus(state, message, datetime.now(UTC))
            log.info("feed indexer", state=state.value, detail=message, topic=self.topic)
            self._notify()

    # -- reading -----------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and start reading where the index ends. Raises the typed Kafka errors
        (`NotAuthorized` when the broker refuses this principal the topic)."""
        self.close()
        self._consumer = self.engine.consumer(group_id=self.group_id, read_committed=True, from_beginning=True,
                                              max_poll_records=self.max_records, client_id="bus-console")
        try:
            self._offsets = self.engine.consumer(read_committed=True, client_id="bus-console-offsets")
            self._discover(force=True)
        except BaseException:
            self.close()
            raise

    def _discover(self, *, force: bool = False) -> None:
        """Assign every partition of the topic (again, when partitions were added)."""
        consumer = self._consumer
        assert consumer is not None
        now = time.monotonic()
        if not force and now - self._discovered_at < self.rediscover_every:
            return
        self._discovered_at = now
        found = consumer.partitions_for(self.topic)
        if not found:
            self._probe(consumer)
        if found == self._partitions and not force:
            return
        stored = self.index.positions()
        assert self._offsets is not None
        lows = {p: self._offsets.watermarks(TopicPartition(self.topic, p))[0] for p in found}
        # Records before the low watermark were deleted by retention: start at the oldest kept.
        starts = {TopicPartition(self.topic, p): OFFSET_BEGINNING if (start := stored.get(p)) is None or start < low
                  else start for p, low in lows.items()}
        consumer.assign(list(starts), offsets=starts)
        self._partitions = found

    def _probe(self, consumer: Consumer) -> None:
        """The topic is not listed: absent, or not ours to see. Ask the broker about it (committed
        offsets, then a short read), so that a refusal comes in the broker's own words
        (`NotAuthorized`); otherwise say that it is not visible."""
        tp = TopicPartition(self.topic, 0)
        consumer.assign([tp])
        try:
            if self.group_id is not None:
                consumer.committed([tp], timeout=PROBE_SECONDS)
            deadline = time.monotonic() + PROBE_READ_SECONDS
            while time.monotonic() < deadline:
                consumer.poll(0.2, 1)
        finally:
            consumer.assign([])
        raise KafkaOperationFailed(f"topic {self.topic} is not visible: it does not exist, or these credentials "
                                   "may not see it (provision the member's feed, or give --feed with the topic "
                                   "the policy names)")

    def step(self) -> list[int]:
        """Re-verify stale records if the directory or keys changed, then poll once and index
        what came; return the new record ids."""
        if self._consumer is None:
            self.open()
        consumer = self._consumer
        assert consumer is not None
        self._discover()
        state = self.verifier.state()
        self._recheck(state.fingerprint)
        polled = consumer.poll(self.poll_timeout, self.max_records)
        entries: list[FeedEntry] = []
        for record in polled:
            entry = self.verifier.entry(record, state)
            if entry.timestamp_ms == 0:  # an undecodable record: no timestamp came with it
                entry = replace(entry, timestamp_ms=int(time.time() * 1000))
            entries.append(entry)
        positions = {p: consumer.position(TopicPartition(self.topic, p)) for p in self._partitions}
        stored = self.index.positions()
        if entries or any(stored.get(p) != o for p, o in positions.items()):
            new = self.index.add(entries, positions)
        else:
            new = []
        if new:
            self._notify()
        if entries or time.monotonic() - self._progress_at > PROGRESS_EVERY:
            self._progress_at = time.monotonic()
            self._set(*self._progress(positions))
        return new

    def _progress(self, positions: dict[int, int]) -> tuple[IndexerState, str]:
        probe = self._offsets
        assert probe is not None
        behind = 0
        for p, position in positions.items():
            _, high = probe.watermarks(TopicPartition(self.topic, p))
            behind += max(0, high - position)
        if behind:
            return IndexerState.CATCHING_UP, f"reading {self.topic}: {behind} record(s) to go"
        return IndexerState.LIVE, f"live on {self.topic}"

    def _recheck(self, fingerprint: str) -> None:
        changed = False
        while stale := self.index.stale(fingerprint):
            state = self.verifier.state()
            if state.fingerprint != fingerprint:
                return  # changed again meanwhile: the next step starts over with the newest
            self.index.recheck({raw.id: self.verifier.entry(raw, state) for raw in stale})
            changed = True
        if changed:
            log.info("feed index verified again", topic=self.topic, checked_with=fingerprint)
            self._notify()

    def run(self, stop: threading.Event) -> None:
        """Index until `stop` is set. Kafka outages and refusals are reported in `status` and
        retried with backoff (an operator may fix an ACL while the console runs)."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.step()
                backoff = 0.5
            except NotAuthorized as exc:
                self._set(IndexerState.REFUSED, f"the broker refuses: {exc}")
                self.close()
            except KafkaError as exc:
                self._set(IndexerState.UNAVAILABLE, str(exc))
                self.close()
            except BusError as exc:
                self._set(IndexerState.FAILED, str(exc))
            except Exception as exc:  # a bug: keep the console up and say so
                log.exception("feed indexer failed", topic=self.topic)
                self._set(IndexerState.FAILED, f"internal error: {exc!r}")
            else:
                continue
            stop.wait(backoff)
            backoff = min(self.max_backoff, backoff * 2)
        self.close()
        self._set(IndexerState.STOPPED, "stopped")

    def close(self) -> None:
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._partitions = []


__all__ = ["FeedIndexer", "IndexerState", "IndexerStatus", "Listener"]
