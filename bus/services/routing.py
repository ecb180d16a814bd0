"""One routing decision for one input record, with no Kafka in sight.

Order of checks for an alert (first failure wins, and names the reject reason):
signature/schema/key (`unseal_any`: plain or encrypted, never decrypted) ->
freshness (future, expired, stale) -> placement (misplaced) -> replay -> policy.
An acknowledgement on `acks` takes its own branch (`route_ack`): signature and key,
freshness, placement, replay, then "was the acknowledged alert delivered to this
member" (`not-received`). Any unexpected exception is `internal-error`, never a crash.

The router service turns a result into Kafka records. Everything a result takes from
an unverified record for the audit trail is bounded (`bus.core.bounded`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bus.core.bounded import Bounded, bounded, bounded_text, capped
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import EncryptionKeyOwners, VerifiedEnvelope, recipients_with_keys, unseal_any
from bus.core.keyring import KeyResolver
from bus.core.placement import partition_for
from bus.core.policy import Decision, PartnerDecision, Policy, evaluate
from bus.core.receipts import VerifiedAck, not_received, verify_ack
from bus.core.sealing import VerifiedAlert
from bus.core.signing import V1_0_ACCEPTED_UNTIL, Headers
from bus.core.topology import ACKS_TOPIC, alert_topic
from bus.core.trust import FreshnessPolicy
from bus.errors import RejectReason, VerificationError

NO_WRAPPED_KEY = "no-wrapped-key"
"""Per-partner reason: the policy allows the partner, but the encrypted alert holds no key for it."""


@dataclass(frozen=True)
class Routed:
    """What the router remembers of a routed record (its task's store): who got it."""

    producer: str
    recipients: tuple[str, ...]


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
    verified: VerifiedAlert | VerifiedEnvelope | None = field(default=None, repr=False)
    crashed: bool = False  # an unexpected exception, not a verification verdict: worth a bug report
    authenticated_producer: str | None = None
    """The producer, once the record's signature verified with a key the directory lists for it
    (`VerificationError.producer`); None otherwise. Only this member may be told the verdict."""
    claims: Mapping[str, Bounded] = field(default_factory=dict)
    """What the envelope claimed (bounded), for the audit trail of a record that did not verify."""
    recipients: tuple[str, ...] = ()
    """Partners the record goes to (for an encrypted alert: allowed by the policy *and* holding a key)."""
    rules: Mapping[str, str] = field(default_factory=dict)
    """Recipient -> the rule that delivered to it (the `bus_route_rule` header of its copy)."""
    encrypted: bool = False
    ack: VerifiedAck | None = None
    """For an acknowledgement: what it says (set once its signature verified)."""
    originator: str | None = None
    """For an accepted acknowledgement: the producer of the acknowledged alert (it receives the ack)."""
    kind: str = "alert"
    """`alert` or `ack`: which branch decided."""

    def audit_entry(self) -> dict[str, Any]:
        """The decision as it goes to the audit trail (before chaining), every claim bounded."""
        entry: dict[str, Any] = {
            "kind": "decision",
            "record": self.kind,
            "message_id": self.message_id if self.message_id is not None else self.claims.get("message_id"),
            "producer": self.producer if self.authenticated_producer else self.claims.get("producer", self.producer),
            "alert_type": self.alert_type if self.alert_type is not None else self.claims.get("alert_type"),
            "key_id": self.key_id if self.authenticated_producer else self.claims.get("key_id", self.key_id),
            "outcome": "routed" if self.accepted else "rejected",
            "receipt_to": self.authenticated_producer,
        }
        if self.encrypted:
            entry["encrypted"] = True
        if self.ack is not None:
            entry["ack"] = {"message_id": self.ack.message_id, "status": self.ack.status.value}
        if self.decision is not None:
            entry["policy_version"] = self.decision.policy_version
            entry["recipients"] = list(self.recipients)
            entry["decisions"] = {
                partner: {"delivered": partner in self.recipients, "rule": d.rule_id,
                          "reason": d.reason if partner in self.recipients or not d.delivered else NO_WRAPPED_KEY}
                for partner, d in sorted(self.decision.per_partner.items())
            }
        elif self.originator is not None:
            entry["recipients"] = [self.originator]
        if self.reason is not None:
            entry["reason"] = str(self.reason)
            entry["detail"] = capped(self.detail)
        return entry


def _peek(headers: Headers, name: str) -> bytes | None:
    values = [v for k, v in headers if k == name]
    return values[0] if len(values) == 1 else None


def _claims(headers: Headers) -> dict[str, Bounded]:
    source = _peek(headers, "ce_source")
    producer = source.rsplit(b":", 1)[-1] if source is not None else None
    ce_type = _peek(headers, "ce_type")
    alert_type = None
    if ce_type is not None and ce_type.startswith(b"eu.epa.alert.") and ce_type.endswith(b".v1"):
        alert_type = ce_type[len(b"eu.epa.alert."):-len(b".v1")]
    return {
        "message_id": bounded(_peek(headers, "ce_id")),
        "producer": bounded(producer),
        "alert_type": bounded(alert_type),
        "key_id": bounded(_peek(headers, "bus_keyid")),
    }


def _text(value: Bounded) -> str | None:
    return value if isinstance(value, str) else None


def unverified(headers: Headers, reason: RejectReason, detail: str, *, crashed: bool = False,
               authenticated_producer: str | None = None) -> RoutingResult:
    """A rejection of a record whose envelope is known only by its (bounded) claims."""
    claims = _claims(headers)
    return RoutingResult(
        False, _text(claims["message_id"]), _text(claims["producer"]), _text(claims["alert_type"]),
        reason=reason, detail=capped(detail), key_id=_text(claims["key_id"]), crashed=crashed,
        authenticated_producer=authenticated_producer, claims=claims,
    )


def placement_problem(topic: str, partition: int, key: bytes | None, partitions: int,
                      expected_topic: str) -> str | None:
    """Why a record whose signed key and type are these does not belong where it is, or None."""
    if topic != expected_topic:
        return f"on topic {bounded_text(topic)}, but its signed type belongs on {expected_topic}"
    if key is None:
        return "the record has no key: a keyed record's place is fixed by its key, a keyless one has none"
    home = partition_for(key, partitions)
    if partition != home:
        return f"on partition {partition} of {topic}, but its signed key maps to partition {home} (of {partitions})"
    return None


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
    topic: str | None = None,
    partition: int | None = None,
    partitions: int | None = None,
    key_owners: EncryptionKeyOwners | None = None,
) -> RoutingResult:
    """Decide what happens to one alert record.

    `feed_topics` maps partner id to feed topic; `seen(message_id)` answers the replay
    question; `topic`, `partition` and `partitions` (the topic's partition count) turn on
    the placement check; `key_owners` (the federation directory) says which wrapped keys
    of an encrypted alert belong to whom. `accept_v1_0_until` ends the wire format 1.0
    transition window (see `bus.core.signing`).
    """
    try:
        return _route(key, value, headers, resolver=resolver, policy=policy, feed_topics=feed_topics,
                      freshness=freshness, seen=seen, now=now, schemas=schemas, empact_codes=empact_codes,
                      accept_v1_0_until=accept_v1_0_until, topic=topic, partition=partition,
                      partitions=partitions, key_owners=key_owners)
    except Exception as exc:  # a hostile record must never stop the router: dead-letter it
        return unverified(headers, RejectReason.INTERNAL_ERROR,
                          f"record could not be processed ({type(exc).__name__}: {capped(str(exc), 200)})",
                          crashed=True)


def _route(
    key: bytes | None, value: bytes | None, headers: Headers, *, resolver: KeyResolver, policy: Policy,
    feed_topics: Mapping[str, str], freshness: FreshnessPolicy, seen: Callable[[str], bool], now: datetime,
    schemas: SchemaSet, empact_codes: EmpactCodeList, accept_v1_0_until: datetime, topic: str | None,
    partition: int | None, partitions: int | None, key_owners: EncryptionKeyOwners | None,
) -> RoutingResult:
    try:
        verified = unseal_any(key, value, headers, resolver, schemas, empact_codes,
                              accept_v1_0_until=accept_v1_0_until)
    except VerificationError as exc:
        return unverified(headers, exc.reason, exc.detail, authenticated_producer=exc.producer)
    encrypted = isinstance(verified, VerifiedEnvelope)
    base: dict[str, Any] = {
        "message_id": str(verified.message_id), "producer": verified.producer,
        "alert_type": verified.alert_type.value, "created": verified.created,
        "key_id": verified.key_id, "verified": verified, "authenticated_producer": verified.producer,
        "encrypted": encrypted,
    }
    expires = verified.expires if isinstance(verified, VerifiedEnvelope) else verified.alert.header.expires
    try:
        freshness.check(verified.created, expires, now)
    except VerificationError as exc:
        return RoutingResult(False, reason=exc.reason, detail=exc.detail, **base)
    if topic is not None and partition is not None and partitions is not None:
        problem = placement_problem(topic, partition, key, partitions, alert_topic(verified.alert_type.value))
        if problem is not None:
            return RoutingResult(False, reason=RejectReason.MISPLACED, detail=problem, **base)
    if seen(base["message_id"]):
        return RoutingResult(False, reason=RejectReason.REPLAY,
                             detail=f"message id {verified.message_id} was already routed", **base)
    if isinstance(verified, VerifiedEnvelope):
        decision = evaluate(policy, verified.routing_facts())
        holders = recipients_with_keys(verified, key_owners)
        recipients = tuple(p for p in decision.recipients if p in holders)
    else:
        decision = evaluate(policy, verified.alert)
        recipients = tuple(decision.recipients)
    rules = {p: _rule(decision.per_partner[p]) for p in recipients}
    feeds = tuple(feed_topics[p] for p in recipients)
    return RoutingResult(True, decision=decision, feeds=feeds, recipients=recipients, rules=rules, **base)


def _rule(decision: PartnerDecision) -> str:
    return decision.rule_id or decision.reason


def route_ack(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    *,
    resolver: KeyResolver,
    freshness: FreshnessPolicy,
    seen: Callable[[str], bool],
    delivered: Callable[[str], Routed | None],
    now: datetime,
    topic: str,
    partition: int,
    partitions: int,
) -> RoutingResult:
    """Decide what happens to one acknowledgement: forwarded to the acknowledged alert's producer,
    or rejected. `delivered(message_id)` is this task's record of who received an alert."""
    try:
        return _route_ack(key, value, headers, resolver=resolver, freshness=freshness, seen=seen,
                          delivered=delivered, now=now, topic=topic, partition=partition, partitions=partitions)
    except Exception as exc:
        return replace(unverified(headers, RejectReason.INTERNAL_ERROR,
                                  f"acknowledgement could not be processed ({type(exc).__name__}: "
                                  f"{capped(str(exc), 200)})", crashed=True), alert_type=None, kind="ack")


def _route_ack(
    key: bytes | None, value: bytes | None, headers: Headers, *, resolver: KeyResolver, freshness: FreshnessPolicy,
    seen: Callable[[str], bool], delivered: Callable[[str], Routed | None], now: datetime, topic: str,
    partition: int, partitions: int,
) -> RoutingResult:
    try:
        ack = verify_ack(key, value, headers, resolver)
    except VerificationError as exc:
        result = unverified(headers, exc.reason, exc.detail, authenticated_producer=exc.producer)
        return replace(result, alert_type=None, kind="ack")
    base: dict[str, Any] = {
        "message_id": ack.ack_id, "producer": ack.member, "alert_type": None, "created": ack.time,
        "key_id": ack.key_id, "authenticated_producer": ack.member, "ack": ack, "kind": "ack",
    }

    def reject(error: VerificationError) -> RoutingResult:
        return RoutingResult(False, reason=error.reason, detail=error.detail, **base)

    try:
        freshness.check(ack.time, None, now)
    except VerificationError as exc:
        return reject(exc)
    problem = placement_problem(topic, partition, key, partitions, ACKS_TOPIC)
    if problem is not None:
        return reject(VerificationError(problem, RejectReason.MISPLACED))
    if seen(ack.ack_id):
        return reject(VerificationError(f"acknowledgement {ack.ack_id} was already routed", RejectReason.REPLAY))
    routed = delivered(ack.message_id)
    if routed is None or ack.member not in routed.recipients:
        return reject(not_received(ack.member, ack.message_id))
    return RoutingResult(True, originator=routed.producer, recipients=(routed.producer,), **base)
