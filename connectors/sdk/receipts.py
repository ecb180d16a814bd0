"""What became of the alerts a connector published: the router's receipts, followed for it.

The router writes a signed receipt for every record it reads to the producer's own
topic `receipts.<member>` (docs/wire-format.md, "Receipts and acknowledgements"):
routed (to how many members, and which) or rejected (with the reason code). A
connector's 202 or "published" only says Kafka has the alert; the receipt says
whether it reached anybody. The SDK follows that topic on a background thread
(`ReceiptFollower`, started by the runtime when the connector has a federation
directory to verify receipts with) and

- keeps the latest status of recent message ids in a bounded LRU (`AlertStatuses`):
  an id this process published is `pending` until its receipt arrives;
- counts the rejections of this process's alerts by reason in the connector's metrics
  (`bus_connector_alerts_rejected_total{reason="key-revoked"}`);
- hands each receipt of this process's alerts to the connector's callbacks
  (`Services.on_receipt(callback)`), e.g. to tell an upstream system, or raise a
  ticket when an alert is rejected.

A receipt that fails verification is logged and never taken as a verdict.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from bus.composition import Bus
from bus.core.trust import FederationDirectory
from bus.errors import BusError
from bus.services.receipts import ReceiptRecord
from connectors.sdk.metrics import ConnectorMetrics

log = structlog.get_logger("connectors.receipts")

RETRY_S = 5.0
"""Wait before reading again after the receipts topic could not be read (missing, Kafka down)."""


class AlertState(StrEnum):
    PENDING = "pending"
    """Published by this process; no receipt yet."""
    ROUTED = "routed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AlertStatus:
    """The latest word on one alert."""

    message_id: str
    state: AlertState
    recipients: tuple[str, ...] = ()
    """Who received it (routed): the originator may know its alert's recipients."""
    reason: str | None = None
    """The router's reject reason code (`bus.errors.RejectReason`), when rejected."""
    detail: str | None = None
    policy_version: str | None = None
    directory_version: str | None = None
    routed_at: str | None = None

    @property
    def recipient_count(self) -> int:
        return len(self.recipients)


@dataclass(frozen=True)
class AlertReceipt:
    """What a receipt callback is given: the new status, and the verified receipt it came from."""

    status: AlertStatus
    record: ReceiptRecord


ReceiptCallback = Callable[[AlertReceipt], None]


def status_of(record: ReceiptRecord) -> AlertStatus | None:
    """The status a verified receipt of an *alert* gives; None for proofs, acks, receipts of
    acknowledgements and records that failed verification."""
    if record.kind != "receipt" or record.receipt is None:
        return None
    value: dict[str, Any] = record.receipt.value
    mid = value.get("message_id")
    if value.get("record", "alert") != "alert" or not isinstance(mid, str):
        return None
    if value.get("outcome") == "routed":
        return AlertStatus(mid, AlertState.ROUTED, tuple(str(r) for r in value.get("recipients") or ()),
                           policy_version=_text(value.get("policy_version")),
                           directory_version=_text(value.get("directory_version")),
                           routed_at=_text(value.get("routed_at")))
    return AlertStatus(mid, AlertState.REJECTED, reason=_text(value.get("reason")) or "unknown",
                       detail=_text(value.get("detail")), policy_version=_text(value.get("policy_version")),
                       directory_version=_text(value.get("directory_version")), routed_at=_text(value.get("routed_at")))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass
class _Entry:
    status: AlertStatus
    ours: bool
    record: ReceiptRecord | None = None


class AlertStatuses:
    """The latest status of the `size` most recently seen message ids (thread-safe LRU).

    An alert is routed once: a later rejection of the same id (a `replay` of a copy, a
    `misplaced` copy on the wrong partition) does not undo it, so a routed status stays.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def published(self, message_id: str) -> AlertReceipt | None:
        """This process published `message_id`: pending until its receipt arrives. If the receipt
        came first (the router can be faster than the producer's acknowledgement), return it."""
        with self._lock:
            known = self._items.get(message_id)
            if known is None:
                self._put(message_id, _Entry(AlertStatus(message_id, AlertState.PENDING), True))
                return None
            self._items.move_to_end(message_id)
            was_ours, known.ours = known.ours, True
            if was_ours or known.record is None:
                return None
            return AlertReceipt(known.status, known.record)

    def update(self, status: AlertStatus, record: ReceiptRecord) -> tuple[bool, bool]:
        """Record a receipt's status; returns (whether it changed what is known, whether this
        process published the alert)."""
        with self._lock:
            known = self._items.get(status.message_id)
            ours = known is not None and known.ours
            if known is not None and known.status.state is AlertState.ROUTED:
                self._items.move_to_end(status.message_id)
                return False, ours
            self._put(status.message_id, _Entry(status, ours, record))
            return True, ours

    def get(self, message_id: str) -> AlertStatus | None:
        with self._lock:
            known = self._items.get(message_id)
            if known is None:
                return None
            self._items.move_to_end(message_id)
            return known.status

    def __len__(self) -> int:
        return len(self._items)

    def _put(self, message_id: str, entry: _Entry) -> None:
        self._items[message_id] = entry
        self._items.move_to_end(message_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class ReceiptFollower:
    """Reads `receipts.<member>` from `lookback` ago, then follows it until `stop` is set.

    Statuses go to `statuses`; rejections of this process's alerts that arrive after the
    start are counted by reason; callbacks get every receipt of this process's alerts.
    The topic being unreadable (no router created it yet, Kafka away) is logged and read
    again after `RETRY_S`, from where it stopped.
    """

    def __init__(self, bus: Bus, member: str, directory: Callable[[], FederationDirectory],
                 statuses: AlertStatuses, metrics: ConnectorMetrics, stop: threading.Event, *,
                 lookback: timedelta = timedelta(hours=1), poll: float = 0.5) -> None:
        self.bus = bus
        self.member = member
        self.directory = directory
        self.statuses = statuses
        self.metrics = metrics
        self.stop = stop
        self.lookback = lookback
        self.poll = poll
        self.started = datetime.now(UTC)
        self.following = threading.Event()
        """Set once the topic was opened (the status endpoint's readiness, and tests)."""
        self._callbacks: list[ReceiptCallback] = []
        self._next_offset: int | None = None
        self._thread: threading.Thread | None = None

    def on_receipt(self, callback: ReceiptCallback) -> None:
        """Call `callback` (on the follower's thread) with each receipt of an alert this process
        published. A callback that raises is logged; the others still run."""
        self._callbacks.append(callback)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="receipts", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._read()
            except BusError as exc:
                self.following.clear()
                log.warning("receipts unreadable", topic=f"receipts.{self.member.lower()}", error=str(exc),
                            error_type=type(exc).__name__)
                self.stop.wait(RETRY_S)
            except Exception:  # never let the follower die silently: every status would freeze
                self.following.clear()
                log.exception("receipts follower failed", topic=f"receipts.{self.member.lower()}")
                self.stop.wait(RETRY_S)

    def _read(self) -> None:
        with self.bus.receipt_reader(self.member, self.directory()) as reader:
            reader.end()  # the topic exists and may be read: say so now, not at the first poll
            self.following.set()
            since = None if self._next_offset is not None else self.started - self.lookback
            for record in reader.records(from_offset=self._next_offset, since=since, follow=True,
                                         poll=self.poll, stop=self.stop.is_set):
                self._next_offset = record.offset + 1
                self.handle(record)

    def published(self, message_id: str) -> None:
        """This process published `message_id` (the publisher calls this once Kafka acknowledged it)."""
        late = self.statuses.published(message_id)
        if late is not None:
            self._settled(late)

    def handle(self, record: ReceiptRecord) -> None:
        if record.error is not None:
            log.warning("receipt not verified", offset=record.offset, reason=str(record.error.reason),
                        detail=record.error.detail)
            return
        status = status_of(record)
        if status is None:
            return
        changed, ours = self.statuses.update(status, record)
        if changed and ours:
            self._settled(AlertReceipt(status, record))

    def _settled(self, receipt: AlertReceipt) -> None:
        """Count (if it arrived since the start) and hand over the receipt of one of our alerts."""
        status = receipt.status
        if status.state is AlertState.REJECTED and receipt.record.timestamp_ms >= self.started.timestamp() * 1000:
            self.metrics.alert_rejected_inc(status.reason or "unknown")
        for callback in self._callbacks:
            try:
                callback(receipt)
            except Exception:
                log.exception("receipt callback failed", message_id=status.message_id)


__all__ = ["AlertReceipt", "AlertState", "AlertStatus", "AlertStatuses", "ReceiptCallback", "ReceiptFollower",
           "status_of"]
