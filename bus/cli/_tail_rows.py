"""`bus tail`'s table: rows that fit the terminal, TLP in its colours, handling codes seen.

Rows are printed one by one (`--follow` cannot wait for a whole table), so the column
widths are fixed once from the console's width (`COLUMNS` when output is not a
terminal): every column starts at its ideal width; the last column (summary, or a dead
letter's detail) takes whatever room is left, or, when that is too little, a line of its
own under the row; if the row is still too wide, columns shrink towards their minimum in
a fixed order (a narrowed column shows short spellings: `container`, `RED`), then the
least useful ones are dropped. A cell that does not fit ends in an ellipsis: no printed
line is ever wider than the console, so nothing wraps. Notes under a row (H3 conditions,
a dead letter's detail) are wrapped instead: they must be read in full.

Every value shown is passed through `printable` (bus.cli._untrusted) first: records come from other
agencies, and a dead letter from anyone who may publish, so an escape sequence in a
summary must be shown, never obeyed by the terminal.

TLP labels are drawn in the FIRST TLP 2.0 colours (font colour on a black background),
the same ones the console uses (`bus.web.console.views.TLP_COLOURS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.style import Style
from rich.text import Text

from bus.cli._tail_dead_letters import DeadLetter
from bus.cli._untrusted import printable
from bus.core.codelists import HandlingCode, Tlp
from bus.core.topology import ALERT_TOPIC_PREFIX
from bus.errors import RejectReason
from bus.services.reader import FeedRecord

TLP_COLOURS: dict[Tlp, str] = {
    Tlp.RED: "#FF2B2B",
    Tlp.AMBER_STRICT: "#FFC000",
    Tlp.AMBER: "#FFC000",
    Tlp.GREEN: "#33FF00",
    Tlp.CLEAR: "#FFFFFF",
}
"""FIRST TLP 2.0 font colours; the standard draws them on black (`TLP_BACKGROUND`)."""
TLP_BACKGROUND = "#000000"
HANDLING_STYLES: dict[HandlingCode, str] = {HandlingCode.H2: "bold", HandlingCode.H3: "bold magenta"}
"""H2 and H3 restrict what the reader may do with an alert: they must stand out."""
SHORT_TYPES = {"suspicious-container": "container", "corruption-indicator": "corruption",
               "operation-notice": "operation"}
"""Alert types in a narrow type column (the full name needs 20 characters)."""
GAP = " "


def tlp_style(tlp: Tlp) -> Style:
    return Style(color=TLP_COLOURS[tlp], bgcolor=TLP_BACKGROUND, bold=True)


def utc(timestamp_ms: int | None) -> datetime | None:
    return None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000, UTC)


# -- layout ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    headers: tuple[str, ...]
    """The title, then a shorter one for a column narrower than `ideal`."""
    ideal: int
    minimum: int


Cell = Text | tuple[Text, Text]
"""A cell's text, or (full, short) spellings: the short one in a column narrower than its ideal
width, so that one column never mixes the two (`TLP:AMBER` above `AMBER+STRICT`), or where the
full one is longer than any the column was sized for (a dead letter's source offset)."""


def _spelling(cell: Cell, narrow: bool, width: int) -> Text:
    if isinstance(cell, Text):
        return cell.copy()
    full, short = cell
    return short.copy() if narrow or full.cell_len > width else full.copy()


@dataclass(frozen=True)
class TableSpec:
    """The columns of one kind of table, and what gives way first when the console is narrow."""

    columns: tuple[Column, ...]
    shrink: tuple[str, ...]
    """Columns shrunk (towards their minimum) in this order."""
    drop: tuple[str, ...]
    """Columns dropped in this order once every column is at its minimum."""
    below_under: int = 0
    """The last column moves to a line of its own under the row when it would get fewer cells
    (or when it would only fit by dropping other columns)."""
    wrap_below: bool = False
    """That line is wrapped (all of it is read) rather than cut to the width."""

    def __post_init__(self) -> None:
        names = {c.name for c in self.columns}
        assert set(self.shrink) <= names and set(self.drop) <= names
        assert self.columns[-1].name not in self.drop, "the last column takes the rest of the room"


ALERTS = TableSpec(
    columns=(
        Column("status", ("STATUS",), 20, 15),
        Column("time", ("CREATED (UTC)",), 19, 19),
        Column("type", ("TYPE",), 20, 10),
        Column("producer", ("PRODUCER",), 12, 10),
        Column("tlp", ("TLP",), 16, 12),
        Column("handling", ("HANDLING",), 11, 8),
        Column("key", ("KEY",), 16, 11),
        Column("summary", ("SUMMARY",), 16, 16),
    ),
    shrink=("key", "type", "tlp", "status", "producer", "handling"),
    drop=("key", "producer", "type", "handling", "time"),
    below_under=32,
)
DEAD_LETTERS = TableSpec(
    columns=(
        Column("status", ("ROUTER'S REASON", "REASON"), 27, 15),
        Column("time", ("REJECTED (UTC)",), 19, 19),
        Column("type", ("TYPE (CLAIMED)", "TYPE?"), 20, 10),
        Column("producer", ("PRODUCER (CLAIMED)", "PRODUCER?"), 18, 10),
        Column("source", ("READ FROM",), 42, 18),
        Column("summary", ("ROUTER'S DETAIL", "DETAIL"), 20, 20),
    ),
    shrink=("type", "producer", "source", "status"),
    drop=("producer", "type", "source", "time"),
    below_under=10_000,  # always: the router's detail (up to 512 characters) is read in full
    wrap_below=True,
)


@dataclass(frozen=True)
class Layout:
    """Column widths fitted to a console width."""

    width: int
    widths: tuple[tuple[str, int], ...]
    narrow: frozenset[str] = frozenset()
    """Columns given less than their ideal width: they show short spellings."""
    below: str | None = None
    """The column printed on a line of its own under each row (too little room beside the others)."""
    wrap_below: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.widths)

    def line(self, cells: dict[str, Cell]) -> Text:
        """One row: each visible cell cut (with an ellipsis) or padded to its width."""
        parts = []
        for name, width in self.widths:
            cell = _spelling(cells.get(name, Text()), name in self.narrow, width)
            cell.truncate(width, overflow="ellipsis", pad=True)
            parts.append(cell)
        row = Text(GAP).join(parts)
        row.rstrip()
        row.truncate(self.width, overflow="ellipsis")
        return row

    def header(self, spec: TableSpec) -> Text:
        titles: dict[str, Cell] = {
            c.name: (Text(c.headers[0], style="bold"), Text(c.headers[-1], style="bold")) for c in spec.columns}
        return self.line(titles)


def _fit(spec: TableSpec, columns: tuple[Column, ...], width: int) -> tuple[dict[str, int], list[str]]:
    """Shrink, then drop, until `columns` fit in `width`; the last one takes any room left."""
    by_name = {c.name: c for c in columns}
    widths = {c.name: c.ideal for c in columns}
    visible = [c.name for c in columns]

    def total() -> int:
        return sum(widths[n] for n in visible) + len(GAP) * (len(visible) - 1)

    for name in (n for n in spec.shrink if n in by_name):
        excess = total() - width
        if excess <= 0:
            break
        widths[name] = max(by_name[name].minimum, widths[name] - excess)
    for name in (n for n in spec.drop if n in by_name):
        if total() <= width:
            break
        visible.remove(name)
    widths[columns[-1].name] += max(0, width - total())
    return widths, visible


def fit(spec: TableSpec, width: int) -> Layout:
    """Widths for `spec` in `width` cells (see the module's docstring for the rules)."""
    width = max(width, 1)
    ideal = {c.name: c.ideal for c in spec.columns}
    last = spec.columns[-1].name
    widths, visible = _fit(spec, spec.columns, width)
    below = None
    if widths[last] < spec.below_under or len(visible) < len(spec.columns):
        # Too little room beside the others, or room only by dropping some: the last column goes below.
        widths, visible = _fit(spec, spec.columns[:-1], width)
        below = last
    narrow = frozenset(n for n in visible if widths[n] < ideal[n])
    return Layout(width, tuple((n, widths[n]) for n in visible), narrow, below, spec.wrap_below)


# -- rows ------------------------------------------------------------------------------------------


_MEASURE = Console(width=1000, color_system=None)
"""Only measures text for wrapping (rich's `Text.wrap` asks for a console)."""


def wrap(text: Text, width: int, indent: int, hanging: int = 0) -> list[Text]:
    """`text` wrapped into lines of at most `width` cells, indented, styles kept."""
    room = max(width - indent - hanging, 8)
    lines = text.wrap(_MEASURE, room, overflow="fold")
    out = []
    for i, line in enumerate(lines):
        padded = Text(" " * (indent + (hanging if i else 0))) + line
        padded.rstrip()
        padded.truncate(width, overflow="ellipsis")
        out.append(padded)
    return out


@dataclass(frozen=True)
class Note:
    """A line under a row (an H3 condition): wrapped, never cut, since it must be read in full."""

    label: str
    style: str
    body: str = ""

    def lines(self, width: int) -> list[Text]:
        text = Text(self.label, style=self.style)
        if self.body:
            text.append(" " + self.body)
        return wrap(text, width, indent=2, hanging=4)


@dataclass(frozen=True)
class Row:
    """One record as the table shows it: its cells, notes printed under it, and when it happened."""

    cells: dict[str, Cell]
    notes: tuple[Note, ...] = ()
    time: datetime | None = None
    """What the table is ordered by (None: unknown, printed after the known ones)."""
    coordinates: tuple[str, int, int] = ("", 0, 0)

    def lines(self, layout: Layout) -> list[Text]:
        """The row, the column that did not fit beside the others, and the notes: none wider than
        the layout."""
        out = [layout.line(self.cells)]
        if layout.below is not None and layout.below in self.cells:
            text = _spelling(self.cells[layout.below], False, layout.width)
            if layout.wrap_below:
                out += wrap(text, layout.width, indent=4)
            else:
                line = Text("    ") + text
                line.truncate(layout.width, overflow="ellipsis")
                out.append(line)
        for note in self.notes:
            out += note.lines(layout.width)
        return out


def _time_text(when: datetime | None) -> Text:
    return Text("?" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))


def _source_cell(source: str) -> Cell:
    """`alerts.suspicious-container[3]@17`, or `container[3]@17` in a narrow column."""
    full = printable(source)
    short = full.removeprefix(ALERT_TOPIC_PREFIX)
    for name, alias in SHORT_TYPES.items():
        if short.startswith(name + "["):
            short = alias + short.removeprefix(name)
    return Text(full), Text(short)


def _tlp_cell(tlp: Tlp) -> Cell:
    """The label alone is coloured (a span), never the padding after it."""
    return Text().append(f"TLP:{tlp.value}", tlp_style(tlp)), Text().append(tlp.value, tlp_style(tlp))


def _type_cell(alert_type: str, style: str = "") -> Cell:
    short = SHORT_TYPES.get(alert_type)
    full = Text(printable(alert_type), style=style)
    return (full, Text(short, style=style)) if short else full


def _handling_text(codes: Sequence[HandlingCode]) -> Text:
    text = Text()
    for i, code in enumerate(codes):
        if i:
            text.append(" ")
        text.append(code.value, style=HANDLING_STYLES.get(code, ""))
    return text


def _h3_note(conditions: str) -> Note:
    return Note("H3 conditions:", HANDLING_STYLES[HandlingCode.H3], printable(conditions))


#: Verified, but not for these keys: not counted as failures (the reader lacks a key, the record is fine).
UNREADABLE = frozenset({RejectReason.ENCRYPTED, RejectReason.NOT_A_RECIPIENT, RejectReason.NO_DECRYPTION_KEY})


def alert_row(rec: FeedRecord) -> Row:
    """A record of an alert topic or a feed: verified (or decrypted), sealed for others, or failed."""
    key = printable((rec.key or b"").decode("utf-8", "replace"))
    where = (rec.topic, rec.partition, rec.offset)
    if rec.verified is not None:
        h = rec.verified.alert.header
        status = Text("✔ decrypted" if rec.verified.encrypted else "✔ verified", style="green")
        h3 = (_h3_note(h.h3_conditions),) if h.h3_conditions else ()
        return Row({"status": status, "time": _time_text(h.created), "type": _type_cell(h.alert_type.value),
                    "producer": Text(h.producer), "tlp": _tlp_cell(h.tlp),
                    "handling": _handling_text(h.handling_codes), "key": Text(key),
                    "summary": Text(printable(h.summary))},
                   h3, h.created, where)
    if rec.envelope is not None:
        c = rec.envelope.header
        reason = rec.error.reason if rec.error is not None else RejectReason.ENCRYPTED
        status = (Text("⊘ encrypted", style="yellow") if reason == RejectReason.ENCRYPTED
                  else Text(f"✘ {reason}", style="red"))
        notes: tuple[Note, ...] = ()
        if HandlingCode.H3 in c.handling_codes:
            notes = (Note("H3 conditions", HANDLING_STYLES[HandlingCode.H3],
                          "are in the encrypted part: read them with --decrypt-key"),)
        return Row({"status": status, "time": _time_text(c.created), "type": _type_cell(c.alert_type.value),
                    "producer": Text(c.producer), "tlp": _tlp_cell(c.tlp),
                    "handling": _handling_text(c.handling_codes), "key": Text(key),
                    "summary": Text(f"(encrypted for {', '.join(c.release_to)})", style="dim")},
                   notes, c.created, where)
    failure = str(rec.error.reason) if rec.error is not None else "failed"
    explained = rec.error.detail if rec.error is not None else ""
    written = utc(rec.timestamp_ms)
    return Row({"status": Text(f"✘ {failure}", style="red"), "time": _time_text(written), "type": Text("?"),
                "producer": Text("?"), "key": Text(key), "summary": Text(printable(explained), style="red")},
               (), written, where)


def dead_letter_row(rec: FeedRecord, letter: DeadLetter | None) -> Row:
    """A record of `dlq.rejected`: the router's reason and detail, never a verdict of today's."""
    where = (rec.topic, rec.partition, rec.offset)
    written = utc(rec.timestamp_ms)
    if letter is None:  # the Kafka client could not read this dead letter itself
        problem = rec.error.detail if rec.error is not None else ""
        return Row({"status": Text("✘ unreadable dead letter", style="red"), "time": _time_text(written),
                    "summary": Text(printable(problem), style="red")}, (), written, where)
    if letter.reason is None:
        status = Text("✘ no reason recorded", style="red")
        detail = Text("no bus_reject_reason header: not written by a router", style="red")
    else:
        status = Text(f"✘ {printable(letter.reason)}", style="red")
        detail = Text(printable(letter.detail or ""))
    if letter.bounded:
        detail = Text("[bounded] ", style="yellow") + detail
    claims = letter.claims
    return Row({"status": status, "time": _time_text(written),
                "type": _type_cell(claims.alert_type or "?", "dim"),
                "producer": Text(printable(claims.producer or "?"), style="dim"),
                "source": _source_cell(str(letter.source)), "summary": detail},
               (), written, where)


def order_key(row: Row) -> tuple[bool, float, str, int, int]:
    """Time order; unknown times after known ones; ties in topic/partition/offset order."""
    when = row.time.timestamp() if row.time is not None else 0.0
    return (row.time is None, when, *row.coordinates)


__all__ = ["ALERTS", "DEAD_LETTERS", "TLP_COLOURS", "UNREADABLE", "Layout", "Note", "Row", "TableSpec", "alert_row",
           "dead_letter_row", "fit", "order_key", "tlp_style"]
