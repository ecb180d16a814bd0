"""What the router recorded on a dead letter, read back for `bus tail dlq.rejected`.

A dead letter is judged by the router when it was rejected: a replay, a stale or a
future alert may well carry a signature that verifies today, so re-verifying it would
say "verified" about a record that was, rightly, not delivered. `bus tail` shows the
router's own headers instead (docs/wire-format.md, "Dead letters"):

- `bus_reject_reason`, `bus_reject_detail`: the verdict and what the router saw;
- `bus_source_topic`, `bus_source_partition`, `bus_source_offset`: where it was read;
- `bus_dead_letter_form: bounded` on the bounded form, whose value is a small JSON
  summary (sizes, SHA-256 digests, the source coordinates) instead of the record.

The router appends its headers after the record's own, and the current router also
strips any the sender wrote; the last value of each name is therefore the router's,
with either router. Only `dlq.rejected` is read this way: only the router may write
there (docs/security.md), whereas anyone who may publish could put these names on
an alert.

What a dead letter *claims* (type, producer, creation time, message id) comes from its
envelope headers as the sender wrote them: shown as claims, bounded, never as facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bus.core.envelope import SOURCE_PREFIX, claimed_alert_type
from bus.core.topology import DLQ_TOPIC
from bus.services.reader import FeedRecord

REJECT_REASON = "bus_reject_reason"
REJECT_DETAIL = "bus_reject_detail"
SOURCE_TOPIC = "bus_source_topic"
SOURCE_PARTITION = "bus_source_partition"
SOURCE_OFFSET = "bus_source_offset"
FORM = "bus_dead_letter_form"
BOUNDED = "bounded"
CLAIM_LIMIT = 128
"""Characters of a claimed header value kept for display (the rest is cut, marked with ...)."""


def is_dead_letter_topic(topic: str) -> bool:
    """Records of this topic are read as the router's dead letters."""
    return topic == DLQ_TOPIC


def _last(rec: FeedRecord, name: str) -> str | None:
    """The last value of header `name` as text (the router's, when a sender also wrote one)."""
    values = [v for k, v in rec.headers if k == name]
    if not values or values[-1] is None:
        return None
    return values[-1].decode("utf-8", "replace")


def _claim(rec: FeedRecord, name: str) -> str | None:
    """A header the sender wrote, if it appears exactly once; cut to `CLAIM_LIMIT` characters."""
    raw = rec.header(name)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= CLAIM_LIMIT else text[: CLAIM_LIMIT - 3] + "..."


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


@dataclass(frozen=True)
class Source:
    """Where the router read the rejected record."""

    topic: str | None
    partition: int | None
    offset: int | None

    def __str__(self) -> str:
        where = self.topic if self.topic is not None else "?"
        partition = "?" if self.partition is None else str(self.partition)
        offset = "?" if self.offset is None else str(self.offset)
        return f"{where}[{partition}]@{offset}"


@dataclass(frozen=True)
class Claims:
    """What the dead letter's envelope headers claim (unverified)."""

    alert_type: str | None
    producer: str | None
    created: str | None
    message_id: str | None


@dataclass(frozen=True)
class DeadLetter:
    """The router's verdict on one record, and what the record claimed."""

    reason: str | None
    """None: no `bus_reject_reason` header, so not written by a router."""
    detail: str | None
    source: Source
    bounded: bool
    """The bounded form: `summary` describes the record, which is not copied."""
    summary: dict[str, Any] | None
    """The bounded form's JSON value (None on a copy, or if it is not a JSON object)."""
    claims: Claims

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail,
            "source": {"topic": self.source.topic, "partition": self.source.partition,
                       "offset": self.source.offset},
            "form": BOUNDED if self.bounded else "copy",
            "claimed": {"type": self.claims.alert_type, "producer": self.claims.producer,
                        "created": self.claims.created, "message_id": self.claims.message_id},
        }
        if self.bounded:
            doc["summary"] = self.summary
        return doc


def _summary(value: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def dead_letter_of(rec: FeedRecord) -> DeadLetter:
    """Read the router's headers (and, on the bounded form, its JSON summary) off a dead letter."""
    bounded = _last(rec, FORM) == BOUNDED
    source_claim = _claim(rec, "ce_source")
    type_claim = _claim(rec, "ce_type")
    claims = Claims(
        alert_type=(claimed_alert_type(type_claim) or type_claim) if type_claim is not None else None,
        producer=source_claim.removeprefix(SOURCE_PREFIX) if source_claim is not None else None,
        created=_claim(rec, "ce_time"),
        message_id=_claim(rec, "ce_id"),
    )
    return DeadLetter(
        reason=_last(rec, REJECT_REASON),
        detail=_last(rec, REJECT_DETAIL),
        source=Source(_last(rec, SOURCE_TOPIC), _int(_last(rec, SOURCE_PARTITION)), _int(_last(rec, SOURCE_OFFSET))),
        bounded=bounded,
        summary=_summary(rec.value) if bounded else None,
        claims=Claims(None, None, None, None) if bounded else claims,
    )


__all__ = ["DeadLetter", "Source", "dead_letter_of", "is_dead_letter_topic"]
