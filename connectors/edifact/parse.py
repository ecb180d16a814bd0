"""UN/EDIFACT container messages -> equipment events (pydifact does the syntax).

One event per EQD (equipment) group. Header-level data (vessel, ports,
place, time) applies to every container of the message unless the EQD group
says otherwise. Supported: CODECO (gate-in/gate-out report), COARRI
(discharge/loading report) and COREOR (container release order); other message
types in an interchange are skipped. Times without a zone are taken as UTC.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydifact.segmentcollection import Interchange
from pydifact.segments import Segment

from bus.errors import FileRejected

#: message type -> BGM document name code (1001) -> event name. COREOR is always "release".
DEFAULT_EVENT_CODES: dict[str, dict[str, str]] = {
    "CODECO": {"34": "gate-in", "36": "gate-out"},
    "COARRI": {"44": "discharge", "46": "load"},
}
RELEASE_MESSAGES = ("COREOR",)
DTM_EVENT_QUALIFIERS = ("7", "178", "203", "137")  # effective, arrival, execution, document
TIME_FORMATS = {"203": "%Y%m%d%H%M", "204": "%Y%m%d%H%M%S", "102": "%Y%m%d"}


@dataclass(frozen=True)
class EquipmentEvent:
    message_type: str
    message_ref: str
    event: str
    container: str
    key: str  # "<message number>:<equipment number>", stable within the file
    where: str  # for humans: "message 2 (ECT-GO-0007), container 3 CSQU3054383"
    time: datetime | None = None
    place: str | None = None
    terminal: str | None = None
    port_of_loading: str | None = None
    port_of_discharge: str | None = None
    seals: tuple[str, ...] = ()
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)
    full: bool | None = None
    vessel_name: str | None = None
    vessel_imo: str | None = None
    voyage: str | None = None


def part(segment: Segment, index: int, component: int = 0) -> str | None:
    """Element `index`, component `component` of a segment, or None when absent/empty."""
    elements = segment.elements
    if index >= len(elements):
        return None
    element: Any = elements[index]
    if isinstance(element, list):
        value = element[component] if component < len(element) else None
    else:
        value = element if component == 0 else None
    return value.strip() or None if isinstance(value, str) else None


def _time(segment: Segment) -> tuple[str | None, datetime | None]:
    qualifier, text, fmt = part(segment, 0, 0), part(segment, 0, 1), part(segment, 0, 2) or "203"
    if not text or fmt not in TIME_FORMATS:
        return qualifier, None
    try:
        return qualifier, datetime.strptime(text, TIME_FORMATS[fmt]).replace(tzinfo=UTC)
    except ValueError:
        return qualifier, None


class _Scope:
    """What a message header or an EQD group says; the group falls back to the header."""

    def __init__(self, parent: _Scope | None = None) -> None:
        self.parent = parent
        self.locations: dict[str, tuple[str | None, str | None]] = {}
        self.times: dict[str, datetime] = {}
        self.references: dict[str, list[str]] = {}
        self.seals: list[str] = []
        self.vessel: tuple[str | None, str | None, str | None] | None = None

    def add(self, segment: Segment) -> None:
        tag = segment.tag
        if tag == "LOC" and part(segment, 0):
            self.locations.setdefault(part(segment, 0) or "", (part(segment, 1), part(segment, 2)))
        elif tag == "DTM":
            qualifier, when = _time(segment)
            if qualifier and when:
                self.times.setdefault(qualifier, when)
        elif tag == "RFF" and part(segment, 0) and part(segment, 0, 1):
            self.references.setdefault(part(segment, 0) or "", []).append(part(segment, 0, 1) or "")
        elif tag == "SEL" and part(segment, 0):
            self.seals.append(part(segment, 0) or "")
        elif tag == "TDT" and part(segment, 0) == "20":  # main carriage: the vessel
            self.vessel = (part(segment, 1), part(segment, 7, 0), part(segment, 7, 3))

    def location(self, qualifier: str) -> tuple[str | None, str | None]:
        found = self.locations.get(qualifier)
        if found is None and self.parent is not None:
            return self.parent.location(qualifier)
        return found or (None, None)

    def time(self) -> datetime | None:
        for qualifier in DTM_EVENT_QUALIFIERS:
            scope: _Scope | None = self
            while scope is not None:
                if qualifier in scope.times:
                    return scope.times[qualifier]
                scope = scope.parent
        return None

    def vessel_info(self) -> tuple[str | None, str | None, str | None]:
        if self.vessel is not None:
            return self.vessel
        return self.parent.vessel_info() if self.parent is not None else (None, None, None)


def _references(header: _Scope, group: _Scope) -> dict[str, tuple[str, ...]]:
    merged: dict[str, list[str]] = {q: list(v) for q, v in header.references.items()}
    for qualifier, values in group.references.items():
        merged.setdefault(qualifier, []).extend(values)
    return {q: tuple(dict.fromkeys(v)) for q, v in merged.items()}


def parse_interchange(text: str, event_codes: dict[str, dict[str, str]] | None = None) -> list[EquipmentEvent]:
    """Every equipment event of an interchange, in file order; FileRejected if it is not EDIFACT."""
    codes = event_codes if event_codes is not None else DEFAULT_EVENT_CODES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydifact warns about its missing XML directories
            messages = list(Interchange.from_str(text).get_messages())
    except Exception as exc:  # pydifact raises EDISyntaxError, StopIteration, AssertionError...
        raise FileRejected([f"not a valid UN/EDIFACT interchange: {exc or type(exc).__name__}"]) from None
    if not messages:
        raise FileRejected(["the interchange contains no messages (UNH...UNT)"])
    events: list[EquipmentEvent] = []
    for number, message in enumerate(messages, start=1):
        if message.type in codes or message.type in RELEASE_MESSAGES:
            events += _message_events(number, message.type, message.reference_number, message.segments, codes)
    return events


def _message_events(number: int, message_type: str, reference: str, segments: list[Segment],
                    codes: dict[str, dict[str, str]]) -> list[EquipmentEvent]:
    header = _Scope()
    document = reference
    event_name = "release" if message_type in RELEASE_MESSAGES else "status"
    groups: list[tuple[Segment, _Scope]] = []
    in_transport = False  # inside an EQD group, LOC/DTM after an inland TDT describe the truck or train
    for segment in segments:
        if segment.tag == "BGM":
            document = part(segment, 1) or reference
            if message_type not in RELEASE_MESSAGES:
                event_name = codes.get(message_type, {}).get(part(segment, 0) or "", "status")
        elif segment.tag == "EQD":
            groups.append((segment, _Scope(header)))
            in_transport = False
        elif segment.tag in ("CNT", "UNT"):
            continue
        elif groups:
            if segment.tag == "TDT":
                in_transport = True
            if not in_transport:
                groups[-1][1].add(segment)
        else:
            header.add(segment)
    events = []
    for index, (eqd, scope) in enumerate((g for g in groups if part(g[0], 0) == "CN"), start=1):
        container = (part(eqd, 1) or "").upper()
        place, terminal = scope.location("165")
        if place is None:
            place, terminal = scope.location("14")
        voyage, imo, vessel = scope.vessel_info()
        full_empty = part(eqd, 5)
        events.append(EquipmentEvent(
            message_type=message_type, message_ref=document, event=event_name, container=container,
            key=f"{number}:{index}",
            where=f"message {number} ({message_type} {document}), container {index} {container or '?'}",
            time=scope.time(), place=place, terminal=terminal,
            port_of_loading=scope.location("9")[0], port_of_discharge=scope.location("11")[0],
            seals=tuple(dict.fromkeys(scope.seals)),
            references=_references(header, scope),
            full=None if full_empty is None else full_empty == "5",
            vessel_name=vessel, vessel_imo=imo, voyage=voyage,
        ))
    return events
