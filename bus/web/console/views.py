"""View models: what the console's pages show for index records, filters and searches.

Plain functions from `bus.adapters.feed_index` records to display values, so the
rules a liaison officer relies on are unit-tested without a browser:

- a record that failed verification gets a red "NOT VERIFIED" badge with its reason,
  never a green one, and none of its claims are shown as facts;
- TLP is labelled and classed in its official TLP 2.0 colour;
- handling codes and H3 conditions travel with every row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from bus.adapters.feed_index import FeedQuery, IndexedRecord, Verdict
from bus.core.alert_terms import Term, TermKind, normalise
from bus.core.codelists import HandlingCode, Tlp
from bus.core.models import AlertType

TLP_CSS = {
    Tlp.RED.value: "tlp-red",
    Tlp.AMBER_STRICT.value: "tlp-amber-strict",
    Tlp.AMBER.value: "tlp-amber",
    Tlp.GREEN.value: "tlp-green",
    Tlp.CLEAR.value: "tlp-clear",
}
"""CSS class per TLP; console.css gives each the FIRST TLP 2.0 colour on black."""
TLP_COLOURS = {"RED": "#FF2B2B", "AMBER+STRICT": "#FFC000", "AMBER": "#FFC000", "GREEN": "#33FF00", "CLEAR": "#FFFFFF"}
"""FIRST TLP 2.0 font colours (on a black background): kept here so tests can hold the CSS to them."""

HANDLING_MEANING = {
    "H0": "no restriction",
    "H1": "no dissemination without the originator's permission",
    "H2": "no use as evidence; only named recipients",
    "H3": "no operational action without prior consultation",
}

SEARCH_PREFIXES: dict[str, TermKind] = {
    "container": TermKind.CONTAINER,
    "imo": TermKind.IMO,
    "vessel": TermKind.IMO,
    "bl": TermKind.BILL_OF_LADING,
    "b/l": TermKind.BILL_OF_LADING,
    "operation": TermKind.OPERATION,
    "op": TermKind.OPERATION,
    "subject": TermKind.SUBJECT,
    "id": TermKind.MESSAGE,
    "message": TermKind.MESSAGE,
    "port": TermKind.PORT,
    "country": TermKind.COUNTRY,
}
"""`container:CSQU3054383` in the search box is an exact search; anything else is free text."""

_PREFIXED = re.compile(r"^([a-z/]+):(\S+)$", re.IGNORECASE)


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


@dataclass(frozen=True)
class Badge:
    label: str
    css: str
    title: str
    trusted: bool


def badge(record: IndexedRecord) -> Badge:
    """The verification badge. Only VERIFIED and DECRYPTED records are ever labelled verified."""
    producer = record.producer or "?"
    if record.verdict is Verdict.VERIFIED:
        return Badge("✔ verified", "badge-ok",
                     f"signed by {producer}; signature and key checked against the trust directory", True)
    if record.verdict is Verdict.DECRYPTED:
        return Badge("✔ verified · decrypted", "badge-ok",
                     f"signed by {producer}, checked against the trust directory, decrypted with our key", True)
    if record.verdict is Verdict.SEALED:
        return Badge("🔒 signed · encrypted", "badge-sealed",
                     f"signature of {producer} checked; the content is encrypted and not readable here "
                     f"({record.reason})", True)
    return Badge(f"✘ NOT VERIFIED: {record.reason}", "badge-failed",
                 f"this record must not be trusted: {record.detail or record.reason}", False)


def _identifier(record: IndexedRecord) -> str:
    alert = record.alert or {}
    for name in ("container_number", "operation_id", "subject_reference"):
        if alert.get(name):
            return str(alert[name])
    return ""


@dataclass(frozen=True)
class RowView:
    """One line of the feed list."""

    id: int
    href: str
    badge: Badge
    tlp: str
    tlp_css: str
    handling: tuple[str, ...]
    h3_conditions: str
    alert_type: str
    producer: str
    created: str
    expires: str
    expired: bool
    received: str
    identifier: str
    summary: str


def record_href(record: IndexedRecord) -> str:
    return f"/record/{record.partition}/{record.offset}"


def row_view(record: IndexedRecord, now: datetime | None = None) -> RowView:
    now = now or datetime.now(UTC)
    mark = badge(record)
    if record.verdict is Verdict.FAILED:
        claims = ", ".join(f"{k} {v}" for k, v in record.claimed.items()) or "nothing readable"
        summary = f"Rejected by verification ({record.reason}). The record claims: {claims}."
        return RowView(record.id, record_href(record), mark, "", "", (), "", "", "", "", "", False,
                       when(record.received), "", summary)
    if record.verdict is Verdict.SEALED:
        header = record.header or {}
        summary = f"Encrypted for {', '.join(header.get('release_to') or [])}; not readable with this console's key."
    else:
        summary = record.summary or ""
    expired = record.expires is not None and record.expires <= now
    return RowView(
        record.id, record_href(record), mark, f"TLP:{record.tlp}", TLP_CSS.get(record.tlp or "", ""),
        record.handling, record.h3_conditions or "", record.alert_type or "", record.producer or "",
        when(record.created), when(record.expires), expired, when(record.received), _identifier(record), summary,
    )


# -- filters and search ----------------------------------------------------------------------

FILTER_NAMES = ("type", "tlp", "handling", "country", "port", "producer", "from", "to", "q")


@dataclass(frozen=True)
class Filters:
    """The list page's filters as the officer set them (query string), checked."""

    values: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    query: FeedQuery = field(default_factory=FeedQuery)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def query_string(self, **override: str) -> str:
        merged = {**self.values, **override}
        return urlencode({k: v for k, v in merged.items() if v})

    @property
    def active(self) -> bool:
        return bool(self.values)


def _day(text: str, *, end: bool) -> datetime:
    """`2026-03-01` (a whole day, UTC) or `2026-03-01T08:00` (UTC)."""
    if "T" in text:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = date.fromisoformat(text)
    return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)


def parse_search(text: str) -> tuple[str, tuple[Term, ...]]:
    """Split the search box into free text and exact `kind:value` terms."""
    free: list[str] = []
    exact: list[Term] = []
    for chunk in text.split():
        match = _PREFIXED.match(chunk)
        kind = SEARCH_PREFIXES.get(match.group(1).lower()) if match else None
        if match and kind is not None:
            exact.append(Term(kind, normalise(kind, match.group(2))))
        else:
            free.append(chunk)
    return " ".join(free), tuple(exact)


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Filters from a query string; a value that is not allowed is dropped and reported."""
    values = {k: params[k].strip() for k in FILTER_NAMES if params.get(k, "").strip()}
    problems: list[str] = []
    kept: dict[str, str] = {}

    def choice(name: str, allowed: set[str], upper: bool = True) -> tuple[str, ...]:
        value = values.get(name)
        if value is None:
            return ()
        value = value.upper() if upper else value
        if value not in allowed:
            problems.append(f"{name}: {value[:40]!r} is not one of {', '.join(sorted(allowed))}")
            return ()
        kept[name] = value
        return (value,)

    def code(name: str, pattern: str, what: str) -> tuple[str, ...]:
        value = values.get(name)
        if value is None:
            return ()
        value = value.upper()
        if not re.fullmatch(pattern, value):
            problems.append(f"{name}: {value[:40]!r} is not {what}")
            return ()
        kept[name] = value
        return (value,)

    types = choice("type", {t.value for t in AlertType}, upper=False)
    tlps = choice("tlp", {t.value for t in Tlp})
    handling = choice("handling", {h.value for h in HandlingCode})
    countries = code("country", r"[A-Z]{2}", "a 2-letter country code")
    ports = code("port", r"[A-Z]{2}[A-Z2-9]{3}", "a UN/LOCODE such as NLRTM")
    producers = code("producer", r"[A-Z0-9]+(-[A-Z0-9]+)*", "a member id")
    bounds: dict[str, datetime] = {}
    for name in ("from", "to"):
        if name in values:
            try:
                bounds[name] = _day(values[name], end=name == "to")
                kept[name] = values[name]
            except ValueError:
                problems.append(f"{name}: {values[name][:40]!r} is not a date (YYYY-MM-DD)")
    text, exact = parse_search(values.get("q", ""))
    if "q" in values:
        kept["q"] = values["q"]
    query = FeedQuery(alert_types=types, tlps=tlps, handling=handling, countries=countries, ports=ports,
                      producers=producers, created_from=bounds.get("from"), created_to=bounds.get("to"),
                      text=text, exact=exact)
    return Filters(kept, tuple(problems), query)


# -- the alert page ---------------------------------------------------------------------------


def label(name: str) -> str:
    special = {"imo": "IMO", "tlp": "TLP", "hs": "HS", "eta": "ETA", "id": "id", "h3": "H3"}
    words = [special.get(w, w) for w in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_display(v) for v in value.values())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fields(data: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Every field of an alert (header first, then its body) as (label, text), empty ones left out."""
    if not data:
        return []
    rows: list[tuple[str, str]] = []
    header = data.get("header") if isinstance(data.get("header"), dict) else None
    for name, value in (header or {}).items():
        if _display(value):
            rows.append((label(name), _display(value)))
    for name, value in data.items():
        if name != "header" and _display(value):
            rows.append((label(name), _display(value)))
    return rows


def term_href(term: Term) -> str:
    prefix = {TermKind.BILL_OF_LADING: "bl"}.get(term.kind, term.kind.value)
    return "/?" + urlencode({"q": f"{prefix}:{term.value}"})


__all__ = [
    "HANDLING_MEANING",
    "SEARCH_PREFIXES",
    "TLP_COLOURS",
    "TLP_CSS",
    "Badge",
    "Filters",
    "RowView",
    "badge",
    "fields",
    "label",
    "parse_filters",
    "parse_search",
    "record_href",
    "row_view",
    "term_href",
    "when",
]
