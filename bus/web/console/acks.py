"""What the console's acknowledge buttons need: a way to publish a member's acknowledgement.

An acknowledgement (issue 16; MISP calls them sightings) tells an alert's originator
what became of it at a recipient: seen, actioned, useful, or a false positive. The
router checks that the member really received the alert and forwards the signed
acknowledgement to the originator's receipts. The console only needs to hand one
over; the signing and publishing service behind this interface is the one `bus ack`
uses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from bus.services.acks import Acknowledger as AckService

MAX_NOTE_CHARS = 500
NO_KEY_REASON = ("this console has no signing key: start `bus console` with --key <MEMBER>.key "
                 "(the member's Ed25519 key, as for `bus ack`) to send acknowledgements")
"""Why the buttons are disabled on a console started without the member's signing key."""

log = structlog.get_logger("bus.console.acks")


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


class ServiceAcknowledger:
    """The buttons' `Acknowledger` on the acknowledgement service `bus ack` uses (`bus.services.acks`).

    The acknowledgement is the *member's*: it is signed with the member's key and says
    nothing about which officer pressed the button. Officers' names are personal data
    that the member, not the bus, decides to share, so the officer is written to the
    console's log (and its own acknowledgement list) and never into the signed record;
    an officer who wants the originator to know can say so in the note.
    """

    def __init__(self, service: AckService) -> None:
        self._service = service
        self._lock = threading.Lock()  # one producer, used from the web server's worker threads

    def acknowledge(self, request: AckRequest) -> str:
        from bus.core.receipts import AckStatus as WireStatus

        with self._lock:
            done = self._service.ack(request.message_id, WireStatus(request.status.value), request.note,
                                     record_key=request.record_key)
        log.info("acknowledged", officer=request.officer, member=self._service.signer.member,
                 message_id=done.message_id, status=done.status.value, partition=done.delivery.partition,
                 offset=done.delivery.offset)
        return f"acks partition {done.delivery.partition} offset {done.delivery.offset}"

    def close(self) -> None:
        with self._lock:
            self._service.close()


__all__ = ["MAX_NOTE_CHARS", "NO_KEY_REASON", "AckRequest", "AckStatus", "Acknowledger", "ServiceAcknowledger"]
