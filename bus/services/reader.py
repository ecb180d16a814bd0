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
    OFFSET_BEGINNING,
    OFFSET_END,
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

    Without `group_id` it reads every partition of `topics` (from the beginning, the end, or
    `since`) and, unless `follow`, stops once it has caught up with the end offsets it found
    at the start. With `group_id` it joins that consumer group (a member's groups are
    `<user>.*`) and commits what it has yielded after each batch.
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
        accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
        decryptor: Decryptor | None = None,
    ) -> None:
        self.topics = list(topics)
        self.resolver = resolver
        self.decryptor = decryptor
        self.group_id = group_id
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.schemas = schemas or default_schemas()
        self.empact_codes = empact_codes or default_empact_codes()
        self.accept_v1_0_until = accept_v1_0_until
        self._since_ms = int(since.timestamp() * 1000) if since else None
        self._end: dict[TopicPartition, int] = {}
        self._consumer = engine.consumer(group_id=group_id, from_beginning=from_beginning)
        try:
            self._assign(from_beginning)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, from_beginning: bool) -> None:
        if self.group_id is not None:
            self._consumer.subscribe(self.topics)
            return
        partitions = []
        for topic in self.topics:
            ids = self._consumer.partitions_for(topic)
            if not ids:
                raise InvalidInput(f"topic {topic!r} does not exist", [("topic", f"{topic!r} does not exist")])
            partitions += [TopicPartition(topic, p) for p in ids]
        self._consumer.assign(partitions)
        if self._since_ms is not None:
            found = self._consumer.offsets_for_time(partitions, self._since_ms)
            for tp in partitions:
                hit = found.get(tp)
                self._consumer.seek(tp, OFFSET_END if hit is None else hit)
        else:
            for tp in partitions:
                self._consumer.seek(tp, OFFSET_BEGINNING if from_beginning else OFFSET_END)
        self._end = {tp: self._consumer.watermarks(tp)[1] for tp in partitions}

    def _caught_up(self) -> bool:
        if not self._end:
            return False
        return all(self._consumer.position(tp) >= end for tp, end in self._end.items())

    def records(self) -> Iterator[FeedRecord]:
        last_activity = time.monotonic()
        while True:
            batch = self._consumer.poll(POLL_SECONDS)
            for polled in batch:
                last_activity = time.monotonic()
                yield self._verify(polled)
            if batch and self.group_id is not None:
                # Everything polled has been handed over: at least once, never skipped.
                self._consumer.commit({tp: self._consumer.position(tp) for tp in {p.tp for p in batch}})
            if self.follow:
                continue
            if not batch and (self._caught_up() or time.monotonic() - last_activity > self.idle_timeout):
                return

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
