"""A member reads its own receipts topic: what became of its records, proofs, acknowledgements.

`receipts.<member>` holds three kinds of signed record (`bus.core.receipts`):
receipts and audit proofs signed by a router key, and acknowledgements of the member's
alerts signed by the recipient that sent them. Each is verified against the federation
directory before it is shown; one that does not verify is shown as such, never as a
verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

from bus.adapters.kafka import OFFSET_BEGINNING, Consumer, Engine, Record, TopicPartition, text_headers
from bus.core.receipts import (
    ACK_TYPE,
    PROOF_TYPE,
    RECEIPT_TYPE,
    RouterRecord,
    VerifiedAck,
    claimed_type,
    verify_ack,
    verify_router_record,
)
from bus.core.topology import receipts_topic
from bus.core.trust import FederationDirectory
from bus.errors import BusError, VerificationError


@dataclass(frozen=True)
class ReceiptRecord:
    """One record of a receipts topic, verified: exactly one of `receipt`, `ack`, `error` is set."""

    offset: int
    timestamp_ms: int
    kind: str
    """`receipt`, `audit-proof`, `ack` or `invalid`."""
    receipt: RouterRecord | None = None
    ack: VerifiedAck | None = None
    error: VerificationError | None = None

    @property
    def message_id(self) -> str | None:
        if self.receipt is not None and self.kind == "receipt":
            value = self.receipt.value.get("message_id")
            return value if isinstance(value, str) else None
        if self.ack is not None:
            return self.ack.message_id
        return None


Directory = Callable[[], FederationDirectory]


def verify_receipt_record(record: Record, directory: FederationDirectory) -> ReceiptRecord:
    headers = text_headers(record.headers)
    kind = claimed_type(headers)
    try:
        if kind == ACK_TYPE:
            return ReceiptRecord(record.offset, record.timestamp_ms, "ack",
                                 ack=verify_ack(record.key, record.value, headers, directory))
        verified = verify_router_record(record.key, record.value, headers, directory)
    except VerificationError as exc:
        return ReceiptRecord(record.offset, record.timestamp_ms, "invalid", error=exc)
    label = "receipt" if verified.ce_type == RECEIPT_TYPE else "audit-proof" if verified.ce_type == PROOF_TYPE \
        else "invalid"
    return ReceiptRecord(record.offset, record.timestamp_ms, label, receipt=verified)


class ReceiptReader:
    """Reads `receipts.<member>` (one partition) from an offset, a time or the start."""

    def __init__(self, engine: Engine, member: str, directory: FederationDirectory | Directory) -> None:
        self.member = member
        self.topic = receipts_topic(member)
        self._directory = directory if callable(directory) else (lambda: directory)
        self._tp = TopicPartition(self.topic, 0)
        self._consumer: Consumer = engine.consumer(read_committed=True, from_beginning=True)
        self._consumer.assign([self._tp])
        # Offsets are looked up on another client: librdkafka stops fetching a partition whose
        # watermarks were queried on the fetching consumer before its first fetch.
        self._probe: Consumer = engine.consumer(read_committed=True)

    def end(self) -> int:
        """The offset the next receipt will have: read from here to see only what comes next."""
        if not self._probe.partitions_for(self.topic):
            raise BusError(f"{self.topic} does not exist (or {self.member} may not read it): no router has "
                           f"created it yet, or {self.member} was not provisioned (`bus provision`)")
        return self._probe.watermarks(self._tp)[1]

    def records(self, *, from_offset: int | None = None, since: datetime | None = None, follow: bool = False,
                poll: float = 0.5, stop: Callable[[], bool] = lambda: False) -> Iterator[ReceiptRecord]:
        """Verified records in order; without `follow`, up to the end as of the call."""
        consumer = self._consumer
        if from_offset is not None:
            consumer.seek(self._tp, from_offset)
        elif since is not None:
            found = self._probe.offsets_for_time([self._tp], int(since.timestamp() * 1000)).get(self._tp)
            consumer.seek(self._tp, found if found is not None else self.end())
        else:
            consumer.seek(self._tp, OFFSET_BEGINNING)
        end = self.end()
        while not stop():
            if not follow and consumer.position(self._tp) >= end:
                return
            for polled in consumer.poll(poll):
                if isinstance(polled, Record):
                    if not follow and polled.offset >= end:
                        return
                    yield verify_receipt_record(polled, self._directory())

    def wait_for(self, message_ids: Collection[str], *, from_offset: int, timeout: float) -> dict[str, ReceiptRecord]:
        """The receipt of each of `message_ids` that arrives within `timeout` seconds (fewer if some do not)."""
        wanted = set(message_ids)
        found: dict[str, ReceiptRecord] = {}
        deadline = time.monotonic() + timeout
        for record in self.records(from_offset=from_offset, follow=True,
                                   stop=lambda: time.monotonic() > deadline or wanted <= set(found)):
            mid = record.message_id
            if record.kind == "receipt" and mid in wanted and mid not in found:
                found[mid] = record
            if wanted <= set(found):
                break
        return found

    def close(self) -> None:
        self._consumer.close()
        self._probe.close()

    def __enter__(self) -> ReceiptReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(record: ReceiptRecord) -> str:
    """One line for a human: what the receipt, proof or acknowledgement says."""
    if record.error is not None:
        return f"NOT VERIFIED ({record.error.reason}): {record.error.detail}"
    if record.ack is not None:
        ack = record.ack
        note = f"  note: {ack.note}" if ack.note else ""
        return f"ack       {ack.message_id}  {ack.status.value} by {ack.member}{note}"
    assert record.receipt is not None
    v = record.receipt.value
    if record.kind == "audit-proof":
        cp = v.get("checkpoint", {})
        return (f"proof     chain {cp.get('chain')} checkpoint {cp.get('seq')}: "
                f"{len(v.get('entries', []))} of your entries (part {v.get('part')}/{v.get('parts')})")
    what = v.get("record", "alert")
    if v.get("outcome") == "routed":
        to = ", ".join(v.get("recipients") or []) or "nobody (the policy names no recipient)"
        return f"routed    {v.get('message_id')}  {what} to {v.get('recipient_count')}: {to}"
    return f"rejected  {v.get('message_id')}  {what}: {v.get('reason')}: {v.get('detail')}"


def require_directory(resolver: object) -> FederationDirectory:
    if not isinstance(resolver, FederationDirectory):
        raise BusError("receipts are verified against the federation directory: give --federation and "
                       "--authority-pub")
    return resolver
