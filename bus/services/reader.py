"""Read topics and verify every record end to end (the originator's signature).

`FeedReader.records()` yields every record with either a verified alert or
the typed error that says why it must not be trusted; `alerts()` yields only
verified alerts and raises on the first bad record. A record the Kafka client
could not decode (`UndecodableRecord`) is reported like any other failed record,
with reason `undecodable`: nothing is skipped silently, nothing crashes the reader.

Encrypted alerts are verified without the decryptor, and decrypted with it
(the member's own private keys); a record the reader cannot decrypt keeps its
verified envelope (`FeedRecord.envelope`) next to the reason.

Build one with `bus.composition.Bus.feed_reader`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from bus.adapters.kafka import (
    Engine,
    Polled,
    TextHeaders,
    TopicPartition,
    UndecodableRecord,
    text_headers,
)
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import Decryptor, VerifiedEnvelope, decrypt, unseal_any
from bus.core.keyring import KeyResolver
from bus.core.sealing import VerifiedAlert
from bus.core.signing import V1_0_ACCEPTED_UNTIL
from bus.errors import InvalidInput, RejectReason, VerificationError

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class FeedRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    """When the record was written; None for a record the client could not decode."""
    key: bytes | None
    headers: TextHeaders
    """Names as text (as the core reads them), values as they arrived (None stays None)."""
    value: bytes
    verified: VerifiedAlert | None
    error: VerificationError | None
    envelope: VerifiedEnvelope | None = None
    """An encrypted alert's verified clear part (set whether or not it was decrypted)."""

    @property
    def ok(self) -> bool:
        return self.verified is not None

    def header(self, name: str) -> bytes | None:
        """The value of a header that appears exactly once, else None."""
        values = [v for k, v in self.headers if k == name]
        return values[0] if len(values) == 1 else None


class FeedReader:
    """Consumes one or more topics (read_committed) on the Kafka port and verifies each record.

    It reads every partition of `topics`, from the beginning, the end, or `since`, and unless
    `follow` stops once it has caught up with the end offsets it found at the start.

    With `group_id`, the group keeps the reader's position: it starts where the group's
    committed offsets say (`since`, or `new_position`, start afresh instead; a partition the
    group has no offset for starts at the beginning or the end, as `from_beginning` says) and
    commits the position after what it has yielded: after each batch with `auto_commit`, or
    when the caller says so (`commit()`), e.g. once it has printed what it was given. The
    partitions are assigned, not shared out by the group: the group is a bookmark (an
    officer's place in the feed, `<user>.<name>` on a secured cluster), not a way to split
    the work, and two readers of one group each read everything.
    """

    def __init__(
        self,
        engine: Engine,
        topics: Sequence[str],
        resolver: KeyResolver,
        *,
        group_id: str | None = None,
        from_beginning: bool = True,
        follow: bool = False,
        idle_timeout: float = 3.0,
        schemas: SchemaSet | None = None,
        empact_codes: EmpactCodeList | None = None,
        since: datetime | None = None,
        new_position: bool = False,
        auto_commit: bool = True,
        accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
        decryptor: Decryptor | None = None,
    ) -> None:
        self.topics = list(topics)
        self.resolver = resolver
        self.decryptor = decryptor
        self.group_id = group_id
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.auto_commit = auto_commit
        self.schemas = schemas or default_schemas()
        self.empact_codes = empact_codes or default_empact_codes()
        self.accept_v1_0_until = accept_v1_0_until
        # Kafka reads a negative time as "latest" or "earliest": a time before 1970 means the start.
        self._since_ms = max(0, int(since.timestamp() * 1000)) if since else None
        self._end: dict[TopicPartition, int] = {}
        self._yielded: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last record handed out."""
        self._committed: dict[TopicPartition, int] = {}
        self._engine = engine
        self._consumer = engine.consumer(group_id=group_id, from_beginning=from_beginning)
        try:
            self._assign(from_beginning, resume=group_id is not None and since is None and not new_position)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, from_beginning: bool, *, resume: bool) -> None:
        partitions = []
        for topic in self.topics:
            ids = self._consumer.partitions_for(topic)
            if not ids:
                raise InvalidInput(f"topic {topic!r} does not exist", [("topic", f"{topic!r} does not exist")])
            partitions += [TopicPartition(topic, p) for p in ids]
        # Offsets are asked of another consumer, and before `assign` (see `end_offsets`):
        # seconds saved on every `bus tail`, and no partition left unfetched.
        probe = self._engine.consumer()
        try:
            bounds = {tp: probe.watermarks(tp) for tp in partitions}
            found = probe.offsets_for_time(partitions, self._since_ms) if self._since_ms is not None else {}
        finally:
            probe.close()
        self._end = {tp: high for tp, (_, high) in bounds.items()}
        saved = self._consumer.committed(partitions) if resume else {}
        # Concrete offsets, never OFFSET_BEGINNING/END: a consumer with a group id that has not
        # fetched yet would otherwise report the group's saved place as its position.
        starts: dict[TopicPartition, int] = {}
        for tp in partitions:
            low, high = bounds[tp]
            saved_at = saved.get(tp)
            hit = found.get(tp)
            if saved_at is not None:  # where the group left off (records since expired: the oldest kept)
                start = min(max(saved_at, low), high)
            elif self._since_ms is not None:
                start = high if hit is None else hit
            else:
                start = low if from_beginning else high
            starts[tp] = start
        self._consumer.assign(partitions, offsets=starts)

    @property
    def caught_up(self) -> bool:
        """Every partition has been read up to the end offset it had when the reader started."""
        if not self._end:
            return False
        return all(self._consumer.position(tp) >= end for tp, end in self._end.items())

    def batches(self) -> Iterator[list[FeedRecord]]:
        """The records of each poll, verified, in partition order as Kafka gives them.

        While following, a poll that found nothing gives an empty list (the caller may act
        on the quiet); without `follow` the iterator ends once caught up, or idle for
        `idle_timeout` seconds.
        """
        last_activity = time.monotonic()
        while True:
            polled = self._consumer.poll(POLL_SECONDS)
            if polled:
                last_activity = time.monotonic()
            batch = [self._verify(p) for p in polled]
            for record in batch:
                self._yielded[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if batch or self.follow:
                yield batch
            if batch and self.auto_commit:
                # Everything polled has been handed over: at least once, never skipped.
                self.commit()
            if self.follow:
                continue
            # Caught up ends the read at once, without a last poll that can only wait and find nothing.
            if self.caught_up or (not batch and time.monotonic() - last_activity > self.idle_timeout):
                return

    def records(self) -> Iterator[FeedRecord]:
        for batch in self.batches():
            yield from batch

    def commit(self) -> None:
        """Save in the group the position after every record handed out so far (no group: nothing)."""
        if self.group_id is None:
            return
        changed = {tp: o for tp, o in self._yielded.items() if self._committed.get(tp) != o}
        if changed:
            self._consumer.commit(changed)
            self._committed.update(changed)

    def alerts(self) -> Iterator[VerifiedAlert]:
        for record in self.records():
            if record.error is not None:
                raise record.error
            assert record.verified is not None
            yield record.verified

    def _verify(self, polled: Polled) -> FeedRecord:
        if isinstance(polled, UndecodableRecord):
            undecodable = VerificationError(f"the Kafka client could not decode this record: {polled.problem}",
                                            RejectReason.UNDECODABLE)
            return FeedRecord(polled.topic, polled.partition, polled.offset, None, None, [], b"", None, undecodable)
        headers = text_headers(polled.headers)
        verified: VerifiedAlert | None = None
        envelope: VerifiedEnvelope | None = None
        error: VerificationError | None = None
        try:
            result = unseal_any(polled.key, polled.value, headers, self.resolver, self.schemas, self.empact_codes,
                                accept_v1_0_until=self.accept_v1_0_until)
            if isinstance(result, VerifiedEnvelope):
                envelope = result
                verified = decrypt(result, self.decryptor, self.schemas, self.empact_codes)
            else:
                verified = result
        except VerificationError as exc:
            error = exc
        return FeedRecord(polled.topic, polled.partition, polled.offset, polled.timestamp_ms, polled.key,
                          headers, polled.value if polled.value is not None else b"", verified, error, envelope)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
