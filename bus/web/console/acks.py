"""What the console's acknowledge buttons need: a way to publish a member's acknowledgement.

An acknowledgement (issue 16; MISP calls them sightings) tells an alert's originator
what became of it at a recipient: seen, actioned, useful, or a false positive. The
router checks that the member really received the alert and forwards the signed
acknowledgement to the originator's receipts. The console only needs to hand one
over; the signing and publishing service behind this interface is the one `bus ack`
uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

MAX_NOTE_CHARS = 500


class AckStatus(StrEnum):
    SEEN = "seen"
    ACTIONED = "actioned"
    USEFUL = "useful"
    FALSE_POSITIVE = "false-positive"

    @property
    def label(self) -> str:
        return self.value.replace("-", " ")


@dataclass(frozen=True)
class AckRequest:
    """One officer's acknowledgement of one alert on the member's feed."""

    message_id: str
    record_key: bytes | None
    """The acknowledged record's key: the acknowledgement goes to the same routing task."""
    status: AckStatus
    note: str | None
    officer: str


class Acknowledger(Protocol):
    def acknowledge(self, request: AckRequest) -> str:
        """Sign and publish the member's acknowledgement; return a short line saying where it
        went. Raises a `BusError` (typed Kafka errors included) if it was not published."""
        ...


__all__ = ["MAX_NOTE_CHARS", "AckRequest", "AckStatus", "Acknowledger"]
