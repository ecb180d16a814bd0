"""Verify one feed record for the member reading it, and say what it can be found by.

The console shows a verification badge for every record; that badge is computed
here, in the server, with the core's own checks (`bus.core.confidential.unseal_any`,
then `decrypt` with the member's keys), against the signed trust directory in force.
A record that fails any check becomes a `FAILED` entry carrying the reason, and
nothing it claims (summary, identifiers) is indexed as if it were true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bus.adapters.feed_index import FeedEntry, RawRecord, Verdict
from bus.adapters.kafka.records import Headers, Record, UndecodableRecord, text_headers
from bus.core.alert_terms import alert_terms, alert_text, clear_terms
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import Decryptor, VerifiedEnvelope, decrypt, unseal_any
from bus.core.envelope import SOURCE_PREFIX
from bus.core.signing import V1_0_ACCEPTED_UNTIL
from bus.core.trust import FederationDirectory
from bus.errors import RejectReason, VerificationError

ROUTE_RULE_HEADER = b"bus_route_rule"
"""Unsigned header the router puts on each forwarded record: the rule id(s) that delivered it
to this feed (it drops any copy a sender set, so a sender cannot forge it)."""
MAX_RULES_TEXT = 512
CLAIMED_HEADERS = {b"ce_id": "message_id", b"ce_source": "producer", b"ce_type": "type"}

UNREADABLE = frozenset({RejectReason.ENCRYPTED, RejectReason.NOT_A_RECIPIENT, RejectReason.NO_DECRYPTION_KEY})
"""Verdicts on an encrypted alert whose signature verified but which this member cannot open."""


def route_rules(headers: Headers) -> tuple[str, ...] | None:
    """The rule ids in `bus_route_rule` (comma- or space-separated, possibly repeated), or None."""
    values = [v for k, v in headers if k == ROUTE_RULE_HEADER and v is not None]
    if not values:
        return None
    text = ",".join(v.decode("utf-8", "replace") for v in values)[:MAX_RULES_TEXT]
    rules = [r.strip() for r in text.replace(" ", ",").split(",")]
    return tuple(r for r in rules if r and r.isprintable())


def claimed(headers: Headers) -> dict[str, str]:
    """What a record's CloudEvents headers claim, bounded and printable (never trusted)."""
    out: dict[str, str] = {}
    for k, v in headers:
        name = CLAIMED_HEADERS.get(k)
        if name and v is not None and name not in out:
            text = v.decode("utf-8", "replace")[:128]
            if name == "producer":
                text = text.removeprefix(SOURCE_PREFIX)
            out[name] = "".join(c if c.isprintable() else "?" for c in text)
    return out


@dataclass(frozen=True)
class VerifierState:
    """The trust directory and keys a verdict is computed with, and their fingerprint."""

    directory: FederationDirectory
    decryptor: Decryptor | None

    @property
    def fingerprint(self) -> str:
        """Changes when the directory or the set of decryption keys does: verdicts are then redone."""
        keys = ",".join(sorted(self.decryptor.keys)) if self.decryptor else "-"
        text = f"{self.directory.digest()}|{keys}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class FeedVerifier:
    """Turns feed records into index entries with their verdict (thread-safe, stateless per call)."""

    def __init__(
        self,
        directory: Callable[[], FederationDirectory],
        decryptor: Decryptor | None,
        schemas: SchemaSet,
        empact_codes: EmpactCodeList,
        *,
        accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
    ) -> None:
        self._directory = directory
        self._decryptor = decryptor
        self._schemas = schemas
        self._codes = empact_codes
        self._accept_v1_0_until = accept_v1_0_until

    def state(self) -> VerifierState:
        """The directory in force now (it may have been reloaded) and the member's keys."""
        return VerifierState(self._directory(), self._decryptor)

    def entry(self, record: Record | UndecodableRecord | RawRecord, state: VerifierState | None = None) -> FeedEntry:
        state = state or self.state()
        if isinstance(record, UndecodableRecord):
            return FeedEntry(record.topic, record.partition, record.offset, 0, None, None, (),
                             Verdict.FAILED, state.fingerprint, reason=RejectReason.UNDECODABLE.value,
                             detail=record.problem[:512])
        base: dict[str, Any] = {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp_ms": record.timestamp_ms, "key": record.key, "value": record.value,
            "headers": tuple(record.headers), "checked_with": state.fingerprint,
            "route_rules": route_rules(record.headers), "claimed": claimed(record.headers),
        }
        try:
            result = unseal_any(record.key, record.value, text_headers(record.headers), state.directory,
                                self._schemas, self._codes, accept_v1_0_until=self._accept_v1_0_until)
        except VerificationError as exc:
            return FeedEntry(**base, verdict=Verdict.FAILED, reason=exc.reason.value, detail=exc.detail)
        envelope = result if isinstance(result, VerifiedEnvelope) else None
        if envelope is not None:
            try:
                result = decrypt(envelope, state.decryptor, self._schemas, self._codes)
            except VerificationError as exc:
                if exc.reason not in UNREADABLE:
                    return FeedEntry(**base, verdict=Verdict.FAILED, reason=exc.reason.value, detail=exc.detail)
                return FeedEntry(**base, verdict=Verdict.SEALED, reason=exc.reason.value, detail=exc.detail,
                                 header=envelope.header.model_dump(mode="json"),
                                 terms=clear_terms(envelope.header))
        assert not isinstance(result, VerifiedEnvelope)
        alert = result.alert
        dumped = alert.model_dump(mode="json")
        return FeedEntry(**base, verdict=Verdict.DECRYPTED if result.encrypted else Verdict.VERIFIED,
                         header=dumped["header"], alert=dumped, terms=alert_terms(alert), text=alert_text(alert))


__all__ = ["ROUTE_RULE_HEADER", "FeedVerifier", "VerifierState", "claimed", "route_rules"]
