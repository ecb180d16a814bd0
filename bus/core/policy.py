"""Routing policy: partners, rules, and the per-message decision of who receives an alert.

Pure: no file I/O, no Kafka. The router calls `evaluate` once per message, so a
`Policy` compiles itself at validation time (frozensets, rules indexed by alert
type, pre-built per-partner decisions) and evaluation only does set look-ups.

Evaluation, per partner (restrictions always win over rules):

1. TLP:RED and the partner is not named in the alert's `release_to` -> `tlp-red-not-named`
2. handling code H2 and the partner is not named in `release_to`    -> `h2-not-named`
3. `release_to` is non-empty and does not include the partner         -> `originator-restriction`
4. no matching rule delivers to the partner                            -> `default-deny`
   (a `require_named` rule delivers only to partners named in `release_to`)
5. the partner is the producer and no matching rule naming it sets
   `include_producer`                                                  -> `producer-excluded`
6. otherwise delivered                                                 -> `matched:<rule id>`

Rules are additive (every matching rule adds its `deliver_to`); the first rule in file
order that delivers to a partner is the one reported for it.

The policy decides on `RoutingFacts`: the header fields listed there and nothing else.
They are built from a plain alert's header (`RoutingFacts.of`) or from the clear part
of an encrypted alert (`bus.core.confidential`), so encrypted alerts are routed by
exactly the same rules without being decrypted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bus.core import topology
from bus.core.codelists import (
    EMPACT_CODES,
    EmpactCodeList,
    HandlingCode,
    InformationAssessment,
    SourceReliability,
    Tlp,
)
from bus.core.models import (
    AlertHeader,
    AlertType,
    BaseAlert,
    CountryCode,
    EmpactPriority,
    MemberId,
    UnLocode,
)
from bus.errors import Loc, PolicyValidationError

__all__ = [
    "FEED_PREFIX",
    "CaseResult",
    "Decision",
    "DecisionCode",
    "EmpactSelector",
    "Match",
    "Partner",
    "PartnerDecision",
    "PartnerKind",
    "Policy",
    "PolicyCase",
    "RoutingFacts",
    "Rule",
    "check_case",
    "evaluate",
    "located_errors",
    "parse_policy",
    "reliability_rank",
]

#: Every partner feed lives under this prefix: ACLs are granted on it, and a policy must
#: never be able to route alerts into `alerts.*`, `audit` or `dlq.*`.
FEED_PREFIX = topology.FEED_TOPIC_PREFIX
_TOPIC = re.compile(r"feed\.[a-z0-9][a-z0-9._-]{0,200}")
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CYCLE = re.compile(r"\d{4}-\d{4}")
_EMPACT_CODE = re.compile(r"[A-Z0-9]+(-[A-Z0-9]+)*")

def _fail(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, "{detail}", {"detail": message})


# -- orderings ------------------------------------------------------------------------------

#: A (best) .. X (cannot be assessed, treated as worst): a threshold of "B" admits A and B.
_RELIABILITY_RANK: Mapping[str, int] = {"A": 0, "B": 1, "C": 2, "X": 3}


def reliability_rank(value: SourceReliability | str) -> int:
    return _RELIABILITY_RANK[str(value)]


def _assessment_rank(value: InformationAssessment | str) -> int:
    return int(str(value)) - 1  # "1" (best) .. "4" (worst)


# -- field types ----------------------------------------------------------------------------


def _int_to_str(value: Any) -> Any:
    """YAML reads `2` as an int; information assessments are the strings "1".."4"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _unique(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise _fail("unique", f"duplicate entry {str(item)!r}")
        seen.add(item)
    return items


_T = TypeVar("_T")
#: An optional non-empty list: omitting a dimension means "any", `[]` would mean "never".
_SelectorList = Annotated[list[_T] | None, Field(min_length=1)]


class PartnerKind(StrEnum):
    """What kind of organisation a partner is; rules and operators reason in these terms."""

    EU_AGENCY = "eu-agency"
    EMPACT = "empact"
    CUSTOMS = "customs"
    POLICE = "police"
    JUDICIAL = "judicial"
    PORT_AUTHORITY = "port-authority"
    PRIVATE_OPERATOR = "private-operator"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Partner(_Model):
    """A member that receives alerts on its own feed topic."""

    id: MemberId
    kind: PartnerKind
    name: str | None = Field(default=None, max_length=200, description="Display name.")
    feed: str = Field(default="", description="Feed topic; default `feed.<id lowercased>`.")

    @model_validator(mode="before")
    @classmethod
    def _default_feed(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("feed") and isinstance(data.get("id"), str):
            return {**data, "feed": FEED_PREFIX + data["id"].lower()}
        return data

    @field_validator("feed")
    @classmethod
    def _feed_topic(cls, value: str) -> str:
        if not _TOPIC.fullmatch(value):
            raise _fail(
                "feed_topic",
                f"{value!r} is not a feed topic: must start with {FEED_PREFIX!r} followed by "
                "lower-case letters, digits, '.', '_' or '-' (e.g. 'feed.nl-customs')",
            )
        return value


class EmpactSelector(_Model):
    """An EMPACT priority to match; without `cycle` the code matches in every cycle."""

    cycle: str | None = None
    code: str

    @field_validator("cycle")
    @classmethod
    def _cycle_format(cls, value: str | None) -> str | None:
        if value is not None and not _CYCLE.fullmatch(value):
            raise _fail("empact", f"{value!r} is not an EMPACT cycle: YYYY-YYYY, e.g. '2026-2029'")
        return value

    @field_validator("code")
    @classmethod
    def _code_format(cls, value: str) -> str:
        if not _EMPACT_CODE.fullmatch(value):
            raise _fail(
                "empact",
                f"{value!r} is not an EMPACT priority code: upper-case letters/digits in "
                "'-'-separated groups, e.g. 'CCH' or 'SYN-NPS'",
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`CCH` or `2026-2029/CCH` in YAML lists, instead of a mapping."""
        if isinstance(data, str):
            cycle, _, code = data.rpartition("/")
            return {"cycle": cycle or None, "code": code}
        return data

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> EmpactSelector:
        """Checked against the code list when the loader passes one (a typo never matches)."""
        codes = (info.context or {}).get(EMPACT_CODES)
        if codes is None:
            return self
        if self.cycle is not None:
            cycle = codes.cycles.get(self.cycle)
            if cycle is None:
                raise _fail(
                    "empact",
                    f"unknown EMPACT cycle {self.cycle!r}; valid cycles: {', '.join(codes.cycles)}",
                )
            if self.code not in cycle.priorities:
                raise _fail(
                    "empact",
                    f"unknown EMPACT priority code {self.code!r} for cycle {self.cycle}; "
                    f"valid codes: {', '.join(cycle.priorities)}",
                )
        elif not any(self.code in c.priorities for c in codes.cycles.values()):
            known = sorted({code for c in codes.cycles.values() for code in c.priorities})
            raise _fail(
                "empact",
                f"unknown EMPACT priority code {self.code!r} (in no cycle); "
                f"known codes: {', '.join(known)}",
            )
        return self


class Match(_Model):
    """Conditions on the alert header: AND across fields, OR within a list; omitted = any."""

    alert_types: _SelectorList[AlertType] = None
    tlp: _SelectorList[Tlp] = None
    tlp_max: Tlp | None = None
    handling_codes_any: _SelectorList[HandlingCode] = None
    handling_codes_none: _SelectorList[HandlingCode] = None
    empact: _SelectorList[EmpactSelector] = None
    countries_any: _SelectorList[CountryCode] = None
    ports_any: _SelectorList[UnLocode] = None
    producers: _SelectorList[MemberId] = None
    min_source_reliability: SourceReliability | None = None
    min_information_assessment: Annotated[
        InformationAssessment | None, BeforeValidator(_int_to_str)
    ] = None

    @field_validator(
        "alert_types", "tlp", "handling_codes_any", "handling_codes_none", "countries_any",
        "ports_any", "producers",
    )
    @classmethod
    def _no_duplicates(cls, value: list[Any] | None) -> list[Any] | None:
        return None if value is None else _unique(value)

    @model_validator(mode="after")
    def _satisfiable(self) -> Match:
        """A match that can never be true is a mistake, not a rule."""
        if not self.allowed_tlps():
            raise _fail(
                "unsatisfiable",
                f"tlp {[t.value for t in self.tlp or ()]} and tlp_max "
                f"{self.tlp_max.value if self.tlp_max else None} leave no TLP label",
            )
        both = set(self.handling_codes_any or ()) & set(self.handling_codes_none or ())
        if both:
            raise _fail(
                "unsatisfiable",
                "handling code(s) "
                f"{', '.join(sorted(both))} in both handling_codes_any and handling_codes_none",
            )
        return self

    def allowed_tlps(self) -> frozenset[Tlp]:
        allowed = set(self.tlp) if self.tlp is not None else set(Tlp)
        if self.tlp_max is not None:
            allowed = {t for t in allowed if t.rank <= self.tlp_max.rank}
        return frozenset(allowed)


class Rule(_Model):
    """When `match` holds, deliver to `deliver_to` (subject to the restrictions)."""

    id: str = Field(description="Stable id; audit records name it (`matched:<id>`).")
    description: str = ""
    match: Match = Field(default_factory=Match)
    deliver_to: list[MemberId] = Field(min_length=1)
    include_producer: bool = Field(
        default=False, description="May deliver the alert back to its own producer."
    )
    require_named: bool = Field(
        default=False,
        description="Deliver only to those of deliver_to the originator named in release_to "
        "(sensitive categories: the originator opts partners in, the policy never broadcasts).",
    )

    @field_validator("id")
    @classmethod
    def _rule_id(cls, value: str) -> str:
        if not _RULE_ID.fullmatch(value):
            raise _fail(
                "rule_id",
                f"{value!r} is not a rule id: 1-64 letters, digits, '.', '_' or '-', "
                "e.g. 'containers-to-europol'",
            )
        return value

    @field_validator("deliver_to")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        return _unique(value)


# -- decisions ------------------------------------------------------------------------------


class DecisionCode(StrEnum):
    """Stable reason codes: the audit trail and `bus policy explain` speak these."""

    MATCHED = "matched"
    DEFAULT_DENY = "default-deny"
    ORIGINATOR_RESTRICTION = "originator-restriction"
    TLP_RED_NOT_NAMED = "tlp-red-not-named"
    H2_NOT_NAMED = "h2-not-named"
    PRODUCER_EXCLUDED = "producer-excluded"


@dataclass(frozen=True, slots=True)
class PartnerDecision:
    """One partner's outcome. `reason` is the stable code (`matched:<rule>` for deliveries)."""

    delivered: bool
    rule_id: str | None
    reason: str
    detail: str = ""

    @property
    def code(self) -> DecisionCode:
        return DecisionCode(self.reason.partition(":")[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "rule": self.rule_id,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """Who receives one alert, and why each partner does or does not."""

    policy_version: str
    recipients: list[str]
    per_partner: Mapping[str, PartnerDecision]
    matched_rules: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "recipients": list(self.recipients),
            "matched_rules": list(self.matched_rules),
            "partners": {p: d.to_dict() for p, d in self.per_partner.items()},
        }


# -- what the policy reads -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """Every alert field the policy reads, and only those.

    An encrypted alert keeps exactly these in clear (plus its identity and expiry, which
    the router needs for replay and freshness), so adding a field here means adding it
    to the clear header of `eu.epa.bus.EncryptedAlert` too.
    """

    alert_type: AlertType
    producer: str
    tlp: Tlp
    handling_codes: frozenset[HandlingCode]
    source_reliability: SourceReliability
    information_assessment: InformationAssessment
    empact_priority: EmpactPriority | None
    release_to: tuple[str, ...]
    countries: tuple[str, ...]
    ports: tuple[str, ...]

    @classmethod
    def of(cls, alert: BaseAlert | AlertHeader | RoutingFacts) -> RoutingFacts:
        """The facts of a plain alert (or of its header); facts pass through unchanged."""
        if isinstance(alert, RoutingFacts):
            return alert
        h = alert.header if isinstance(alert, BaseAlert) else alert
        return cls(
            alert_type=h.alert_type,
            producer=h.producer,
            tlp=h.tlp,
            handling_codes=frozenset(h.handling_codes),
            source_reliability=h.source_reliability,
            information_assessment=h.information_assessment,
            empact_priority=h.empact_priority,
            release_to=tuple(h.release_to),
            countries=tuple(h.countries),
            ports=tuple(h.ports),
        )


# -- compiled form --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    tlps: frozenset[str] | None
    producers: frozenset[str] | None
    max_reliability: int | None
    max_assessment: int | None
    hc_any: frozenset[str] | None
    hc_none: frozenset[str] | None
    empact_any_cycle: frozenset[str] | None
    empact_pairs: frozenset[tuple[str, str]]
    countries: frozenset[str] | None
    ports: frozenset[str] | None
    deliver_to: tuple[str, ...]
    include_producer: bool
    require_named: bool

    def matches(self, h: RoutingFacts, countries: Callable[[], frozenset[str]]) -> bool:
        if self.tlps is not None and h.tlp not in self.tlps:
            return False
        if self.producers is not None and h.producer not in self.producers:
            return False
        if (
            self.max_reliability is not None
            and _RELIABILITY_RANK[h.source_reliability] > self.max_reliability
        ):
            return False
        if (
            self.max_assessment is not None
            and _assessment_rank(h.information_assessment) > self.max_assessment
        ):
            return False
        if self.hc_any is not None and self.hc_any.isdisjoint(h.handling_codes):
            return False
        if self.hc_none is not None and not self.hc_none.isdisjoint(h.handling_codes):
            return False
        if self.empact_any_cycle is not None:
            ep = h.empact_priority
            if ep is None or (
                ep.code not in self.empact_any_cycle
                and (ep.cycle, ep.code) not in self.empact_pairs
            ):
                return False
        if self.countries is not None and self.countries.isdisjoint(countries()):
            return False
        return not (self.ports is not None and self.ports.isdisjoint(h.ports))


def _opt(values: Iterable[Any] | None) -> frozenset[Any] | None:
    return None if values is None else frozenset(values)


def _compile_rule(rule: Rule) -> _CompiledRule:
    m = rule.match
    tlps = m.allowed_tlps()
    empact = m.empact
    return _CompiledRule(
        id=rule.id,
        tlps=None if len(tlps) == len(Tlp) else tlps,
        producers=_opt(m.producers),
        max_reliability=(
            None if m.min_source_reliability is None else reliability_rank(m.min_source_reliability)
        ),
        max_assessment=(
            None
            if m.min_information_assessment is None
            else _assessment_rank(m.min_information_assessment)
        ),
        hc_any=_opt(m.handling_codes_any),
        hc_none=_opt(m.handling_codes_none),
        empact_any_cycle=(
            None if empact is None else frozenset(s.code for s in empact if s.cycle is None)
        ),
        empact_pairs=frozenset((s.cycle, s.code) for s in empact or () if s.cycle is not None),
        countries=_opt(m.countries_any),
        ports=_opt(m.ports_any),
        deliver_to=tuple(rule.deliver_to),
        include_producer=rule.include_producer,
        require_named=rule.require_named,
    )


@dataclass(frozen=True, slots=True)
class _CompiledPartner:
    """Every decision a partner can get, built once: evaluation allocates no decisions."""

    id: str
    deny: PartnerDecision
    restricted: PartnerDecision
    red: PartnerDecision
    h2: PartnerDecision
    matched: Mapping[str, PartnerDecision]
    producer_excluded: Mapping[str, PartnerDecision]


def _compile_partner(partner: Partner, rules: Sequence[Rule]) -> _CompiledPartner:
    pid = partner.id
    mine = [r for r in rules if pid in r.deliver_to]
    return _CompiledPartner(
        id=pid,
        deny=PartnerDecision(
            False, None, DecisionCode.DEFAULT_DENY.value, "no matching rule delivers to it"
        ),
        restricted=PartnerDecision(
            False, None, DecisionCode.ORIGINATOR_RESTRICTION.value,
            "not in the originator's release_to",
        ),
        red=PartnerDecision(
            False, None, DecisionCode.TLP_RED_NOT_NAMED.value,
            "TLP:RED and not named in the originator's release_to",
        ),
        h2=PartnerDecision(
            False, None, DecisionCode.H2_NOT_NAMED.value,
            "H2 (no dissemination without the provider's permission) and not named in "
            "release_to",
        ),
        matched={
            r.id: PartnerDecision(
                True, r.id, f"{DecisionCode.MATCHED.value}:{r.id}",
                r.description or f"delivered by rule {r.id}",
            )
            for r in mine
        },
        producer_excluded={
            r.id: PartnerDecision(
                False, r.id, DecisionCode.PRODUCER_EXCLUDED.value,
                f"it produced the alert and rule {r.id} does not set include_producer",
            )
            for r in mine
        },
    )


class _Compiled:
    __slots__ = ("by_type", "partners", "uses_countries", "version")

    def __init__(self, policy: Policy) -> None:
        rules = [_compile_rule(r) for r in policy.rules]
        self.by_type: dict[str, tuple[_CompiledRule, ...]] = {
            t.value: tuple(
                c for r, c in zip(policy.rules, rules, strict=True)
                if r.match.alert_types is None or t in r.match.alert_types
            )
            for t in AlertType
        }
        self.uses_countries = any(c.countries is not None for c in rules)
        self.partners = tuple(
            _compile_partner(p, policy.rules) for p in sorted(policy.partners, key=lambda p: p.id)
        )
        self.version = policy.revision

    def __eq__(self, other: object) -> bool:
        # A pure function of the policy's fields, which pydantic compares first: two equal
        # policies must stay equal although each holds its own compiled form.
        return isinstance(other, _Compiled) and other.version == self.version

    __hash__ = None  # type: ignore[assignment]

    def evaluate(self, h: RoutingFacts) -> Decision:
        cache: list[frozenset[str]] = []

        def countries() -> frozenset[str]:
            """The alert's countries plus its ports' countries (UN/LOCODE prefix), once."""
            if not cache:
                cache.append(frozenset(h.countries).union(p[:2] for p in h.ports))
            return cache[0]

        producer = h.producer
        named = frozenset(h.release_to)
        first: dict[str, _CompiledRule] = {}
        producer_rule: _CompiledRule | None = None
        matched: list[str] = []
        for rule in self.by_type.get(h.alert_type, ()):
            if not rule.matches(h, countries):
                continue
            matched.append(rule.id)
            for pid in rule.deliver_to:
                if pid not in first and (not rule.require_named or pid in named):
                    first[pid] = rule
            if (
                producer_rule is None
                and rule.include_producer
                and producer in rule.deliver_to
                and (not rule.require_named or producer in named)
            ):
                producer_rule = rule

        red = h.tlp == Tlp.RED
        h2 = HandlingCode.H2 in h.handling_codes
        per: dict[str, PartnerDecision] = {}
        recipients: list[str] = []
        for cp in self.partners:
            pid = cp.id
            if pid not in named and (red or h2 or named):
                d = cp.red if red else cp.h2 if h2 else cp.restricted
            elif pid == producer:
                r = first.get(pid)
                if r is None:
                    d = cp.deny
                elif producer_rule is None:
                    d = cp.producer_excluded[r.id]
                else:
                    d = cp.matched[producer_rule.id]
            else:
                r = first.get(pid)
                d = cp.deny if r is None else cp.matched[r.id]
            if d.delivered:
                recipients.append(pid)
            per[pid] = d
        return Decision(self.version, recipients, per, matched)


# -- the policy -----------------------------------------------------------------------------


class Policy(_Model):
    """Partners and rules. Validated as a whole; compiled once for fast `evaluate`."""

    version: str = Field(min_length=1, max_length=64)
    description: str = ""
    partners: list[Partner] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    digest: str | None = Field(
        default=None,
        description="Set by the loader (short sha256 of the file), never written by hand.",
    )

    _compiled: _Compiled | None = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _fail(
                "version",
                f"version must be a string; quote it (version: \"{value}\") so that "
                "e.g. 1.10 does not become 1.1",
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _digest_from_context(cls, data: Any, info: ValidationInfo) -> Any:
        digest = (info.context or {}).get("digest")
        if digest is not None and isinstance(data, dict):
            return {**data, "digest": digest}
        return data

    @model_validator(mode="after")
    def _references(self) -> Policy:
        """Cross-references, reported with their location (raises PolicyValidationError)."""
        errors: list[tuple[Loc, str]] = []
        ids: dict[str, int] = {}
        feeds: dict[str, int] = {}
        for i, p in enumerate(self.partners):
            if p.id in ids:
                errors.append((("partners", i, "id"), f"duplicate partner id {p.id!r} "
                               f"(first at partners[{ids[p.id]}])"))
            ids.setdefault(p.id, i)
            # Kafka treats '.' and '_' alike in metric names: such topics collide.
            key = p.feed.replace("_", ".")
            if key in feeds:
                errors.append((("partners", i, "feed"), f"feed topic {p.feed!r} collides with "
                               f"partners[{feeds[key]}].feed"))
            feeds.setdefault(key, i)
        rule_ids: dict[str, int] = {}
        for i, r in enumerate(self.rules):
            if r.id in rule_ids:
                errors.append((("rules", i, "id"), f"duplicate rule id {r.id!r} "
                               f"(first at rules[{rule_ids[r.id]}])"))
            rule_ids.setdefault(r.id, i)
            for j, pid in enumerate(r.deliver_to):
                if pid not in ids:
                    errors.append((("rules", i, "deliver_to", j), _unknown_partner(pid, ids)))
        if errors:
            raise PolicyValidationError(errors)
        self._compiled = _Compiled(self)
        return self

    @property
    def revision(self) -> str:
        """What decisions and audit records cite: `version` plus the file digest if known."""
        return f"{self.version}+{self.digest}" if self.digest else self.version

    def partner(self, partner_id: str) -> Partner:
        for p in self.partners:
            if p.id == partner_id:
                return p
        raise KeyError(partner_id)

    def feed_topic(self, partner_id: str) -> str:
        return self.partner(partner_id).feed

    def feeds(self) -> dict[str, str]:
        """Partner id -> feed topic."""
        return {p.id: p.feed for p in self.partners}

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _unknown_partner(pid: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(pid, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown partner {pid!r}{hint}; declare it under partners"


def parse_policy(
    data: Any, *, digest: str | None = None, empact_codes: EmpactCodeList | None = None
) -> Policy:
    """Validate a policy document; every problem becomes a located PolicyValidationError.

    `empact_codes` lets EMPACT selectors be checked against the code list; the
    loader passes it, the core never reads files.
    """
    from pydantic import ValidationError

    if not isinstance(data, Mapping):
        raise PolicyValidationError([((), f"expected a mapping, got {type(data).__name__}")])
    if "digest" in data:
        raise PolicyValidationError(
            [(("digest",), "set by the loader from the file bytes; remove it from the file")]
        )
    try:
        return Policy.model_validate(
            data, context={"digest": digest, EMPACT_CODES: empact_codes}
        )
    except ValidationError as exc:
        raise PolicyValidationError(located_errors(exc)) from None


def located_errors(exc: Any) -> list[tuple[Loc, str]]:
    """A pydantic ValidationError as (loc, message) pairs in this module's wording."""
    out: list[tuple[Loc, str]] = []
    for e in exc.errors(include_url=False):
        # drop pydantic's union/function markers such as 'list[...]' or 'function-before[...]'
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        out.append((loc, _message(e)))
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/policy.md)"
    if kind == "too_short":
        return "must not be empty (omit the field to match anything)"
    if kind == "enum":
        return f"{error.get('input')!r} is not valid: expected {ctx.get('expected')}"
    if kind == "string_type" and isinstance(error.get("input"), bool):
        return "expected text, got a boolean (quote YAML words like yes/no/on/off)"
    return str(error["msg"])


def evaluate(policy: Policy, alert: RoutingFacts | BaseAlert | AlertHeader) -> Decision:
    """Decide, for every partner of `policy`, whether `alert` is delivered and why.

    Takes the routing facts (what an encrypted alert keeps in clear), or a plain alert
    or header, whose facts are taken with `RoutingFacts.of`.
    """
    compiled = policy._compiled
    if compiled is None:  # only if built with model_construct
        compiled = policy._compiled = _Compiled(policy)
    return compiled.evaluate(RoutingFacts.of(alert))


# -- policy test cases ----------------------------------------------------------------------


class PolicyCase(_Model):
    """An operator's expectation: this alert goes to exactly these partners."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    alert: dict[str, Any]
    expect: list[MemberId]
    expect_reasons: dict[MemberId, str] = Field(
        default_factory=dict,
        description="Optional partner -> reason code (`default-deny`) or full reason "
        "(`matched:<rule>`).",
    )

    @field_validator("expect")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("expect_reasons")
    @classmethod
    def _known_codes(cls, value: dict[str, str]) -> dict[str, str]:
        codes = {c.value for c in DecisionCode}
        for partner, reason in value.items():
            if reason.partition(":")[0] not in codes:
                raise _fail(
                    "reason",
                    f"{partner}: {reason!r} is not a reason code; one of {', '.join(sorted(codes))}"
                    " (or matched:<rule>)",
                )
        return value


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    expected: list[str]
    actual: list[str]
    missing: list[str]
    unexpected: list[str]
    #: partner -> (expected reason, actual reason) for `expect_reasons` that differ
    wrong_reasons: dict[str, tuple[str, str]]
    decision: Decision


def check_case(
    policy: Policy,
    name: str,
    alert: RoutingFacts | BaseAlert | AlertHeader,
    expect: Iterable[str],
    expect_reasons: Mapping[str, str] | None = None,
) -> CaseResult:
    """Evaluate and diff against the expectation (recipients, optionally reasons)."""
    decision = evaluate(policy, alert)
    expected = sorted(expect)
    actual = decision.recipients
    wrong: dict[str, tuple[str, str]] = {}
    for pid, want in (expect_reasons or {}).items():
        got = decision.per_partner.get(pid)
        got_reason = got.reason if got is not None else "not-a-partner"
        ok = got_reason == want if ":" in want else got_reason.partition(":")[0] == want
        if not ok:
            wrong[pid] = (want, got_reason)
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    return CaseResult(
        name=name,
        passed=not missing and not unexpected and not wrong,
        expected=expected,
        actual=list(actual),
        missing=missing,
        unexpected=unexpected,
        wrong_reasons=wrong,
        decision=decision,
    )
