"""What crosses the Kafka port: records in, records out, where they landed.

Engine-neutral plain data. Header names and values are bytes, as on the wire,
so that no client's text decoding decides what the router sees or forwards:
a dead-letter copy carries exactly the bytes that arrived (nulls stay null).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

Header = tuple[bytes, bytes | None]
Headers = tuple[Header, ...]
TextHeaders = list[tuple[str, bytes | None]]
"""Headers as the core's signing code reads them: names as text, values as bytes."""


def text_headers(headers: Headers) -> TextHeaders:
    """Names decoded for the core. A name that is not UTF-8 keeps its bytes as surrogates,
    so it can never equal a covered header's name and never raises."""
    return [(k.decode("utf-8", "surrogateescape"), v) for k, v in headers]


def wire_headers(headers: TextHeaders | list[tuple[str, bytes]]) -> Headers:
    """The inverse of `text_headers`: what a producer puts on the wire."""
    return tuple((k.encode("utf-8", "surrogateescape"), v) for k, v in headers)


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """One record as a consumer read it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header_values(self, name: bytes) -> list[bytes | None]:
        """Every value of a header, in order (a header may repeat)."""
        return [v for k, v in self.headers if k == name]

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what counts against record size limits."""
        return _size(self.key, self.value, self.headers)


@dataclass(frozen=True, slots=True)
class UndecodableRecord:
    """A record the client could not decode (a header name that is not UTF-8, a corrupt batch).

    Only its coordinates are known. The consumer has already moved past it, so
    polling goes on; whoever reads it decides what to do (the router dead-letters it).
    """

    topic: str
    partition: int
    offset: int
    problem: str

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


Polled = Record | UndecodableRecord


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    replication: int


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    cluster_id: str | None
    brokers: int
    controller: int | None


OFFSET_BEGINNING = -2
"""`Consumer.seek` sentinel: the oldest retained offset."""
OFFSET_END = -1
"""`Consumer.seek` sentinel: after the last record (the next one to be written)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine's producers can send, so a service can choose another form up front
    instead of failing a transaction (the router writes a bounded dead letter then).

    Both real clients read anything the broker holds; they differ in what they write:
    kafka-python sends header values as bytes only (no null) and refuses a record with
    neither key nor value; librdkafka cuts a header name at a NUL byte (the confluent
    engine refuses to send one). Neither can send a header name that is not UTF-8.
    """

    null_header_values: bool = True
    keyless_valueless_records: bool = True
    nul_in_header_names: bool = True
    non_utf8_header_names: bool = True
    max_record_bytes: int = 1_048_576
    """The producer's limit on one record, key, value and headers counted."""

    def cannot_send(self, key: bytes | None, value: bytes | None, headers: Headers) -> str | None:
        """Why this engine cannot produce the record as it is, or None if it can."""
        if key is None and value is None and not self.keyless_valueless_records:
            return "a record with neither key nor value"
        if not (self.null_header_values and self.nul_in_header_names and self.non_utf8_header_names):
            for name, header_value in headers:
                if header_value is None and not self.null_header_values:
                    return "a null header value"
                if b"\x00" in name and not self.nul_in_header_names:
                    return "a header name holding a NUL byte"
                if not self.non_utf8_header_names:
                    try:
                        name.decode("utf-8")
                    except UnicodeDecodeError:
                        return "a header name that is not UTF-8"
        size = _size(key, value, headers)
        if size > self.max_record_bytes:
            return f"{size} bytes, over the producer's limit of {self.max_record_bytes}"
        return None


def _size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes of key, value and headers (a null counts as none). A plain loop: this runs for
    every record a producer sends and every check before one, several times per routed alert."""
    size = (0 if key is None else len(key)) + (0 if value is None else len(value))
    for name, header_value in headers:
        size += len(name) if header_value is None else len(name) + len(header_value)
    return size
