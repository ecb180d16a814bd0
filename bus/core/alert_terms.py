"""What an alert can be found by: exact identifiers and free text.

A liaison officer searches the feed by a container number, a vessel's IMO number,
a bill of lading, an operation id, or a word of a summary, and wants to see every
alert about the same container or vessel next to the one in front of them. Which
fields hold those identifiers is domain knowledge, so it lives here, once, for the
console's feed index today and a TAXII server's `match[...]` filters later.

Pure: works on validated models only. An encrypted alert that was not decrypted
offers only its clear header (`clear_terms`), never a guess at its body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bus.core.codelists import HandlingCode
from bus.core.models import (
    BaseAlert,
    CorruptionIndicatorAlert,
    OperationNoticeAlert,
    SuspiciousContainerAlert,
)

__all__ = [
    "IDENTITY_KINDS",
    "HeaderFacts",
    "Term",
    "TermKind",
    "alert_terms",
    "alert_text",
    "clear_terms",
    "normalise",
]


class TermKind(StrEnum):
    """Kinds of exact search term (also the prefixes of the console's search box: `imo:9074729`)."""

    CONTAINER = "container"
    IMO = "imo"
    BILL_OF_LADING = "bl"
    OPERATION = "operation"
    SUBJECT = "subject"
    MESSAGE = "message"
    RELATED = "related"
    PORT = "port"
    COUNTRY = "country"
    HANDLING = "handling"


IDENTITY_KINDS = frozenset({TermKind.CONTAINER, TermKind.IMO, TermKind.BILL_OF_LADING,
                            TermKind.OPERATION, TermKind.SUBJECT})
"""Terms that name a real-world thing: two alerts sharing one are related."""


@dataclass(frozen=True, order=True)
class Term:
    kind: TermKind
    value: str


def normalise(kind: TermKind, value: str) -> str:
    """The form a term is stored and looked up in: upper case, no spaces; IMO without its prefix.

    So `imo:IMO 9074729`, `imo:9074729` and a stored `9074729` all meet.
    """
    text = "".join(value.split()).upper()
    if kind is TermKind.IMO:
        text = text.removeprefix("IMO")
    if kind in (TermKind.MESSAGE, TermKind.RELATED):
        text = text.lower()
    return text


class HeaderFacts(Protocol):
    """What `AlertHeader` and an encrypted alert's `ClearHeader` both state."""

    @property
    def message_id(self) -> uuid.UUID: ...
    @property
    def ports(self) -> list[str]: ...
    @property
    def countries(self) -> list[str]: ...
    @property
    def handling_codes(self) -> list[HandlingCode]: ...


def _header_terms(header: HeaderFacts) -> Iterator[Term]:
    yield Term(TermKind.MESSAGE, str(header.message_id))
    for port in header.ports:
        yield Term(TermKind.PORT, port)
        # A port's UN/LOCODE starts with its country: filtering by country finds it too.
        yield Term(TermKind.COUNTRY, port[:2])
    for country in header.countries:
        yield Term(TermKind.COUNTRY, country)
    for code in header.handling_codes:
        yield Term(TermKind.HANDLING, code.value)


def _body_terms(alert: BaseAlert) -> Iterator[Term]:
    if isinstance(alert, SuspiciousContainerAlert):
        yield Term(TermKind.CONTAINER, alert.container_number)
        if alert.vessel_imo:
            yield Term(TermKind.IMO, alert.vessel_imo)
        if alert.bill_of_lading:
            yield Term(TermKind.BILL_OF_LADING, alert.bill_of_lading)
        for port in (alert.port_of_loading, alert.port_of_discharge, *alert.transshipment_ports):
            if port:
                yield Term(TermKind.PORT, port)
                yield Term(TermKind.COUNTRY, port[:2])
    elif isinstance(alert, CorruptionIndicatorAlert):
        yield Term(TermKind.SUBJECT, alert.subject_reference)
        yield Term(TermKind.PORT, alert.port)
        yield Term(TermKind.COUNTRY, alert.port[:2])
        for container in alert.linked_containers:
            yield Term(TermKind.CONTAINER, container)
    elif isinstance(alert, OperationNoticeAlert):
        yield Term(TermKind.OPERATION, alert.operation_id)
        for port in alert.ports:
            yield Term(TermKind.PORT, port)
            yield Term(TermKind.COUNTRY, port[:2])
        for container in alert.containers:
            yield Term(TermKind.CONTAINER, container)
        for imo in alert.vessels:
            yield Term(TermKind.IMO, imo)


def _unique(terms: Iterable[Term]) -> list[Term]:
    return sorted({Term(t.kind, normalise(t.kind, t.value)) for t in terms})


def alert_terms(alert: BaseAlert) -> list[Term]:
    """Every exact term of a readable alert, normalised, without duplicates."""
    related = (Term(TermKind.RELATED, str(r)) for r in alert.header.related)
    return _unique([*_header_terms(alert.header), *_body_terms(alert), *related])


def clear_terms(header: HeaderFacts) -> list[Term]:
    """The terms of an encrypted alert's clear header (`bus.core.confidential.ClearHeader`)."""
    return _unique(_header_terms(header))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def alert_text(alert: BaseAlert) -> str:
    """The free text of a readable alert: every string field (summary, names, goods,
    descriptions, identifiers), one per line, for a full-text index."""
    return "\n".join(_strings(alert.model_dump(mode="json")))
