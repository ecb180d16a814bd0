"""Dead letters: what the router writes to `dlq.rejected` for a record it did not route.

Two forms (docs/wire-format.md, "Dead letters"):

- the **copy**: the record's key and value unchanged, null kept null, and every
  incoming header byte for byte and in order, except incoming `bus_reject_*` and
  `bus_source_*` headers, which are dropped; then the router's own reject headers.
  So the reason a reader sees is always the router's, never one the sender wrote.
- the **bounded form**: a small JSON value (sizes and SHA-256 of the key, the value
  and each header, and the source coordinates), with the same reject headers and
  `bus_dead_letter_form: bounded`. Used when the copy cannot be written: it would be
  over the producer's size limit, the record was too big to route at all (reason
  `oversized`), the client could not decode it (`undecodable`), or the Kafka engine
  cannot send what it holds (kafka-python: a null header value). It still lets the
  record be found (topic, partition, offset) and checked against the original.

The router chose this over raising topic size limits (so that the DLQ would accept
anything an alert topic accepts): limits would have to grow on every topic the copy
passes through, and one huge record would still cost every reader of the DLQ.

Pure: no I/O. Header names and values are bytes, as they cross the Kafka port.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from bus.core.bounded import bounded, capped

RawHeaders = Sequence[tuple[bytes, bytes | None]]

REJECT_REASON = b"bus_reject_reason"
REJECT_DETAIL = b"bus_reject_detail"
SOURCE_TOPIC = b"bus_source_topic"
SOURCE_PARTITION = b"bus_source_partition"
SOURCE_OFFSET = b"bus_source_offset"
FORM = b"bus_dead_letter_form"
"""`bounded` on a bounded-form dead letter (absent on a copy)."""
BOUNDED = "bounded"
STRIPPED_PREFIXES = (b"bus_reject_", b"bus_source_", b"bus_dead_letter_")
"""Incoming headers with these prefixes never reach the dead-letter copy: the router's own are authoritative."""
HEADERS_LISTED = 64
"""Headers described one by one in a bounded form (the rest are counted and hashed together)."""


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def reject_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[bytes, bytes]]:
    """The router's authoritative headers on every dead letter (detail bounded, ASCII-safe)."""
    return [
        (REJECT_REASON, reason.encode("ascii")),
        (REJECT_DETAIL, capped(detail).encode("ascii", "backslashreplace")),
        (SOURCE_TOPIC, topic.encode("utf-8", "surrogateescape")),
        (SOURCE_PARTITION, str(partition).encode("ascii")),
        (SOURCE_OFFSET, str(offset).encode("ascii")),
    ]


def copy_headers(incoming: RawHeaders, reason: str, detail: str, topic: str, partition: int,
                 offset: int) -> list[tuple[bytes, bytes | None]]:
    """The headers of a dead-letter copy: incoming ones kept (minus reserved names), router's appended."""
    kept = [(name, value) for name, value in incoming if not name.startswith(STRIPPED_PREFIXES)]
    return [*kept, *reject_headers(reason, detail, topic, partition, offset)]


def bounded_value(
    *,
    reason: str,
    why: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None = None,
    key: bytes | None = None,
    value: bytes | None = None,
    headers: RawHeaders | None = None,
) -> bytes:
    """The JSON value of a bounded-form dead letter. `headers=None`: the record could not be read."""
    doc: dict[str, Any] = {
        "form": BOUNDED,
        "reason": reason,
        "why": capped(why),
        "source": {"topic": bounded(topic), "partition": partition, "offset": offset},
    }
    if timestamp_ms is not None:
        doc["timestamp_ms"] = timestamp_ms
    if headers is not None:
        listed = [
            {"name": bounded(name), "len": None if v is None else len(v), "sha256": _sha256(v)}
            for name, v in list(headers)[:HEADERS_LISTED]
        ]
        size = (len(key or b"") + len(value or b"")
                + sum(len(name) + len(v or b"") for name, v in headers))
        doc.update({
            "size": size,
            "key": None if key is None else {"len": len(key), "sha256": _sha256(key)},
            "value": None if value is None else {"len": len(value), "sha256": _sha256(value)},
            "header_count": len(headers),
            "headers": listed,
            "headers_sha256": headers_digest(headers),
        })
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def bounded_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[bytes, bytes]]:
    return [*reject_headers(reason, detail, topic, partition, offset), (FORM, BOUNDED.encode())]


def headers_digest(headers: RawHeaders) -> str:
    """What `headers_sha256` of a bounded form is: length-prefixed names and values, null as ff ff ff ff."""
    h = hashlib.sha256()
    for name, v in headers:
        h.update(len(name).to_bytes(4, "big") + name)
        h.update(b"\xff" * 4 if v is None else len(v).to_bytes(4, "big") + v)
    return h.hexdigest()
