"""Read topics and verify every record end to end (the originator's signature).

`FeedReader.records()` yields every record with either a verified alert or
the typed error that says why it must not be trusted; `alerts()` yields only
verified alerts and raises on the first bad record.

Encrypted alerts are verified without the decryptor, and decrypted with it
(the member's own private keys); a record the reader cannot decrypt keeps its
verified envelope (`FeedRecord.envelope`) next to the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from kafka import TopicPartition

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import Decryptor, VerifiedEnvelope, decrypt, unseal_any
from bus.core.keyring import KeyResolver
from bus.core.sealing import VerifiedAlert
from bus.core.signing import V1_0_ACCEPTED_UNTIL
from bus.errors import BusError, VerificationError


@dataclass(frozen=True)
class FeedRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: list[tuple[str, bytes]]
    value: bytes
    verified: VerifiedAlert | None
    error: VerificationError | None
    envelope: VerifiedEnvelope | None = None
    """An encrypted alert's verified clear part (set whether or not it was decrypted)."""

    @property
    def ok(self) -> bool:
        return self.verified is not None


class FeedReader:
    """Consumes one or more topics (read_committed) and verifies each record."""

    def __init__(
        self,
        settings: KafkaSettings,
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
        self.settings = settings
        self.topics = list(topics)
        self.resolver = resolver
        self.decryptor = decryptor
        self.group_id = group_id
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.schemas = schemas or default_schemas()
        self.empact_codes = empact_codes or default_empact_codes()
        self.accept_v1_0_until = accept_v1_0_until
        self._consumer = kafka_adapter.consumer(
            settings, group_id=group_id,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=group_id is not None,
        )
        self._since_ms = int(since.timestamp() * 1000) if since else None
        self._end: dict[TopicPartition, int] = {}
        self._assign(from_beginning)

    def _assign(self, from_beginning: bool) -> None:
        if self.group_id is not None:
            self._consumer.subscribe(self.topics)
            return
        partitions = []
        for topic in self.topics:
            ids = self._consumer.partitions_for_topic(topic)
            if not ids:
                raise BusError(f"topic {topic!r} does not exist (or you are not allowed to describe it)")
            partitions += [TopicPartition(topic, p) for p in sorted(ids)]
        self._consumer.assign(partitions)
        if self._since_ms is not None:
            found = self._consumer.offsets_for_times(dict.fromkeys(partitions, self._since_ms))
            for tp in partitions:
                hit = found.get(tp)
                if hit is None:
                    self._consumer.seek_to_end(tp)
                else:
                    self._consumer.seek(tp, hit.offset)
        elif from_beginning:
            self._consumer.seek_to_beginning(*partitions)
        else:
            self._consumer.seek_to_end(*partitions)
        self._end = self._consumer.end_offsets(partitions)

    def _caught_up(self) -> bool:
        if not self._end:
            return False
        return all(self._consumer.position(tp) >= end for tp, end in self._end.items())

    def records(self) -> Iterator[FeedRecord]:
        last_activity = time.monotonic()
        while True:
            batch = self._consumer.poll(timeout_ms=500)
            for messages in batch.values():
                for msg in messages:
                    last_activity = time.monotonic()
                    yield self._verify(msg)
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

    def _verify(self, msg) -> FeedRecord:  # type: ignore[no-untyped-def]
        headers = [(k, bytes(v) if v is not None else b"") for k, v in (msg.headers or [])]
        value = msg.value if msg.value is not None else b""
        verified: VerifiedAlert | None = None
        envelope: VerifiedEnvelope | None = None
        error: VerificationError | None = None
        try:
            result = unseal_any(msg.key, msg.value, headers, self.resolver, self.schemas, self.empact_codes,
                                accept_v1_0_until=self.accept_v1_0_until)
            if isinstance(result, VerifiedEnvelope):
                envelope = result
                verified = decrypt(result, self.decryptor, self.schemas, self.empact_codes)
            else:
                verified = result
        except VerificationError as exc:
            error = exc
        return FeedRecord(
            msg.topic, msg.partition, msg.offset, msg.timestamp, msg.key, headers, value, verified, error,
            envelope,
        )

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
