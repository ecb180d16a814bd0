"""Code lists: TLP 2.0, Europol handling codes, the 4x4 evaluation, EMPACT priorities.

The first four are fixed standards, so they are enums (and Avro enums). EMPACT
priorities change every four-year cycle, so they are data
(`schemas/codelists/empact.yaml`) checked at validation time rather than baked
into the wire schema: a new cycle must not need a schema change.

The core reads no files: `parse_empact` takes the YAML text, which
`bus.adapters.schema_files` reads (shipped, or `$BUS_CODELISTS_DIR`). Validation
gets the parsed `EmpactCodeList` through pydantic's validation context under
`EMPACT_CODES` (see `bus.core.models.parse_alert`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import yaml

from bus.errors import CodeListError, UnknownCodeError

EMPACT_FILE = "empact.yaml"
#: Key of the `EmpactCodeList` in pydantic's validation context (alerts and policies).
EMPACT_CODES = "empact_codes"


class Tlp(StrEnum):
    """Traffic Light Protocol 2.0 (FIRST). Avro symbols are the member names."""

    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"

    @property
    def rank(self) -> int:
        """0 (CLEAR) .. 4 (RED): lets policy say "at most AMBER" without string games."""
        return list(Tlp).index(self)

    @property
    def description(self) -> str:
        return TLP_DESCRIPTIONS[self]


TLP_DESCRIPTIONS: Mapping[Tlp, str] = {
    Tlp.CLEAR: "Recipients can spread this to the world; there is no limit on disclosure.",
    Tlp.GREEN: "Recipients can spread this within their community, not via public channels.",
    Tlp.AMBER: "Limited disclosure: recipients' organisations and their clients, need-to-know.",
    Tlp.AMBER_STRICT: "Limited disclosure: the recipients' organisation only, need-to-know.",
    Tlp.RED: "For the eyes and ears of individual recipients only, no further disclosure.",
}


class HandlingCode(StrEnum):
    """Europol/SIENA handling codes: restrictions the provider puts on use."""

    H0 = "H0"
    H1 = "H1"
    H2 = "H2"
    H3 = "H3"

    @property
    def description(self) -> str:
        return HANDLING_CODE_DESCRIPTIONS[self]


HANDLING_CODE_DESCRIPTIONS: Mapping[HandlingCode, str] = {
    HandlingCode.H0: "May be used for preventing and combating crime, under national law.",
    HandlingCode.H1: "Must not be used as evidence in judicial proceedings without the "
    "provider's permission.",
    HandlingCode.H2: "Must not be disseminated without the provider's permission.",
    HandlingCode.H3: "Other restrictions apply (stated in h3_conditions).",
}


class SourceReliability(StrEnum):
    """4x4 evaluation, source side (Europol): how far the source has proved reliable."""

    A = "A"
    B = "B"
    C = "C"
    X = "X"


SOURCE_RELIABILITY_DESCRIPTIONS: Mapping[SourceReliability, str] = {
    SourceReliability.A: "No doubt of authenticity, trustworthiness and competence, or "
    "proved reliable in all instances.",
    SourceReliability.B: "Has in most instances proved reliable.",
    SourceReliability.C: "Has in most instances proved unreliable.",
    SourceReliability.X: "Reliability cannot be assessed.",
}


class InformationAssessment(StrEnum):
    """4x4 evaluation, information side. Avro symbols are the member names."""

    NO_DOUBT = "1"
    KNOWN_TO_SOURCE = "2"
    CORROBORATED = "3"
    NOT_CORROBORATED = "4"


INFORMATION_ASSESSMENT_DESCRIPTIONS: Mapping[InformationAssessment, str] = {
    InformationAssessment.NO_DOUBT: "Information whose accuracy is not in doubt.",
    InformationAssessment.KNOWN_TO_SOURCE: "Known personally to the source but not to the "
    "official passing it on.",
    InformationAssessment.CORROBORATED: "Not known personally to the source but corroborated "
    "by information already recorded.",
    InformationAssessment.NOT_CORROBORATED: "Not known personally to the source and cannot be "
    "corroborated.",
}


# -- EMPACT ---------------------------------------------------------------------------------

_CYCLE = re.compile(r"\d{4}-\d{4}")
_CODE = re.compile(r"[A-Z0-9]+(-[A-Z0-9]+)*")


@dataclass(frozen=True)
class EmpactEntry:
    code: str
    title: str
    priority: str
    description: str = ""


@dataclass(frozen=True)
class EmpactCycle:
    name: str
    valid_from: date
    valid_to: date
    adopted: date | None
    source: str
    priorities: Mapping[str, EmpactEntry]

    def covers(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True)
class EmpactCodeList:
    version: str
    cycles: Mapping[str, EmpactCycle]

    def lookup(self, cycle: str, code: str) -> EmpactEntry:
        """The entry for (cycle, code); `UnknownCodeError` names what would be valid."""
        return self.lookup_code(self.lookup_cycle(cycle), code)

    def lookup_cycle(self, cycle: str) -> EmpactCycle:
        try:
            return self.cycles[cycle]
        except KeyError:
            raise UnknownCodeError(
                f"unknown EMPACT cycle {cycle!r}; valid cycles: {', '.join(self.cycles)}"
            ) from None

    @staticmethod
    def lookup_code(cycle: EmpactCycle, code: str) -> EmpactEntry:
        try:
            return cycle.priorities[code]
        except KeyError:
            raise UnknownCodeError(
                f"unknown EMPACT priority code {code!r} for cycle {cycle.name}; "
                f"valid codes: {', '.join(cycle.priorities)}"
            ) from None

    def cycle_for(self, day: date) -> EmpactCycle | None:
        """The cycle in force on `day` (None between or outside cycles)."""
        return next((c for c in self.cycles.values() if c.covers(day)), None)


def parse_empact(text: str, *, source: str = "<EMPACT code list>") -> EmpactCodeList:
    """Parse and check EMPACT YAML; a broken list fails loudly, once, at startup.

    `source` (a file name, say) only labels error messages.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CodeListError(f"EMPACT code list {source} is not valid YAML: {exc}") from exc
    try:
        return _parse_empact(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CodeListError(f"EMPACT code list {source} is malformed: {exc}") from exc


def _parse_empact(data: Any) -> EmpactCodeList:
    if not isinstance(data, dict) or not isinstance(data.get("cycles"), dict):
        raise ValueError("expected a mapping with 'cycles'")
    cycles: dict[str, EmpactCycle] = {}
    for name, body in data["cycles"].items():
        name = str(name)
        if not _CYCLE.fullmatch(name):
            raise ValueError(f"cycle {name!r} is not YYYY-YYYY")
        priorities: dict[str, EmpactEntry] = {}
        for item in body["priorities"]:
            code = str(item["code"])
            if not _CODE.fullmatch(code):
                raise ValueError(f"cycle {name}: code {code!r} is not upper-case A-Z0-9 groups")
            if code in priorities:
                raise ValueError(f"cycle {name}: code {code} appears twice")
            priorities[code] = EmpactEntry(
                code=code,
                title=str(item["title"]),
                priority=str(item.get("priority", item["title"])),
                description=str(item.get("description", "")).strip(),
            )
        if not priorities:
            raise ValueError(f"cycle {name} has no priorities")
        valid_from = date.fromisoformat(str(body["valid_from"]))
        valid_to = date.fromisoformat(str(body["valid_to"]))
        if valid_to < valid_from:
            raise ValueError(f"cycle {name} ends before it starts")
        adopted = body.get("adopted")
        cycles[name] = EmpactCycle(
            name=name,
            valid_from=valid_from,
            valid_to=valid_to,
            adopted=date.fromisoformat(str(adopted)) if adopted else None,
            source=str(body.get("source", "")).strip(),
            priorities=priorities,
        )
    if not cycles:
        raise ValueError("no cycles")
    return EmpactCodeList(version=str(data.get("version", "")), cycles=cycles)
