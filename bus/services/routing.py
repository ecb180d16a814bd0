"""One routing decision for one input record, with no Kafka in sight.

Order of checks (first failure wins, and names the reject reason):
signature/schema/key (unseal) -> freshness (future, stale, expired) -> replay
-> policy. The router service turns the result into Kafka records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.keyring import KeyResolver
from bus.core.policy import Decision, Policy, evaluate
from bus.core.sealing import VerifiedAlert, unseal
from bus.core.signing import V1_0_ACCEPTED_UNTIL, Headers
from bus.core.trust import FreshnessPolicy
from bus.errors import RejectReason, VerificationError


@dataclass(frozen=True)
class RoutingResult:
    accepted: bool
    message_id: str | None
    producer: str | None
    alert_type: str | None
    created: datetime | None = None
    decision: Decision | None = None
    feeds: tuple[str, ...] = ()
    reason: RejectReason | None = None
    detail: str = ""
    key_id: str | None = None
    verified: VerifiedAlert | None = field(default=None, repr=False)
    crashed: bool = False  # an unexpected exception, not a verification verdict: worth a bug report
    authenticated_producer: str | None = None
    """The producer, once the record's signature verified with a key the directory lists for it
    (`VerificationError.producer`); None otherwise. Only this member may be told the verdict."""

    def audit_entry(self) -> dict[str, Any]:
        """The decision as it goes to the audit trail (before chaining)."""
        entry: dict[str, Any] = {
            "message_id": self.message_id,
            "producer": self.producer,
            "alert_type": self.alert_type,
            "key_id": self.key_id,
            "outcome": "routed" if self.accepted else "rejected",
        }
        if self.decision is not None:
            entry["policy_version"] = self.decision.policy_version
            entry["recipients"] = list(self.decision.recipients)
            entry["decisions"] = {
                partner: {"delivered": d.delivered, "rule": d.rule_id, "reason": d.reason}
                for partner, d in sorted(self.decision.per_partner.items())
            }
        if self.reason is not None:
            entry["reason"] = str(self.reason)
            entry["detail"] = self.detail
        return entry


def _peek(headers: Headers, name: str) -> str | None:
    """Best-effort header value for the audit trail of a record we could not verify."""
    values = [v for k, v in headers if k == name]
    if len(values) != 1 or values[0] is None:
        return None
    try:
        return values[0].decode()
    except UnicodeDecodeError:
        return None


def _unverified(headers: Headers, reason: RejectReason, detail: str,
                crashed: bool = False, authenticated_producer: str | None = None) -> RoutingResult:
    source = _peek(headers, "ce_source")
    return RoutingResult(
        False, _peek(headers, "ce_id"), source.rsplit(":", 1)[-1] if source else None, None,
        reason=reason, detail=detail, key_id=_peek(headers, "bus_keyid"), crashed=crashed,
        authenticated_producer=authenticated_producer,
    )


def route(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    *,
    resolver: KeyResolver,
    policy: Policy,
    feed_topics: Mapping[str, str],
    freshness: FreshnessPolicy,
    seen: Callable[[str], bool],
    now: datetime,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
) -> RoutingResult:
    """Decide what happens to one record.

    `feed_topics` maps partner id to feed topic; `seen(message_id)` answers the replay question;
    `accept_v1_0_until` ends the wire format 1.0 transition window (see `bus.core.signing`).
    """
    try:
        verified = unseal(key, value, headers, resolver, schemas, empact_codes,
                          accept_v1_0_until=accept_v1_0_until)
    except VerificationError as exc:
        return _unverified(headers, exc.reason, exc.detail, authenticated_producer=exc.producer)
    except Exception as exc:  # a hostile record must never stop the router: dead-letter it
        return _unverified(headers, RejectReason.BAD_SCHEMA,
                           f"record could not be processed ({type(exc).__name__}: {exc})", crashed=True)
    header = verified.alert.header
    base = {
        "message_id": str(header.message_id), "producer": header.producer,
        "alert_type": header.alert_type.value, "created": header.created,
        "key_id": verified.key_id, "verified": verified, "authenticated_producer": header.producer,
    }
    try:
        freshness.check(header.created, header.expires, now)
    except VerificationError as exc:
        return RoutingResult(False, reason=exc.reason, detail=exc.detail, **base)
    if seen(str(header.message_id)):
        return RoutingResult(
            False, reason=RejectReason.REPLAY,
            detail=f"message id {header.message_id} was already routed", **base,
        )
    decision = evaluate(policy, verified.alert)
    feeds = tuple(feed_topics[p] for p in decision.recipients)
    return RoutingResult(True, decision=decision, feeds=feeds, **base)
