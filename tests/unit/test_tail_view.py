"""`bus tail`'s output, without a broker: widths, time order, TLP colours, handling codes,
`--since`, `--group`, and dead letters shown as the router recorded them.

The real broker, through the CLI, is in tests/integration/test_tail.py.
"""

from __future__ import annotations

import io
import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from bus.cli._tail_dead_letters import dead_letter_of
from bus.cli._tail_rows import ALERTS, DEAD_LETTERS, TLP_COLOURS, alert_row, dead_letter_row, fit
from bus.cli._tail_since import parse_since
from bus.cli._untrusted import printable
from bus.cli.tail import TailPrinter, dead_letter_dict, group_id_for, print_feed
from bus.config import KafkaSettings
from bus.core.codelists import Tlp
from bus.core.confidential import unseal_any
from bus.core.keys import SigningKey
from bus.core.sealing import seal
from bus.errors import InvalidInput, RejectReason, VerificationError
from bus.services.reader import FeedRecord
from tests.helpers import CODES, SCHEMAS, example, keyring_for

SIGNER = SigningKey.generate("NL-CUSTOMS")
NOW = datetime.now(UTC).replace(microsecond=0)
H3 = ("No operational action without prior consultation of the Dutch customs liaison officer at Europol; "
      "not for use as evidence without the written consent of the Openbaar Ministerie, Rotterdam.")


def verified_record(name: str = "suspicious-container", *, partition: int = 0, offset: int = 0,
                    created: datetime = NOW, **header: object) -> FeedRecord:
    alert = example(name, created=created.isoformat(), **header)
    sealed = seal(alert, SIGNER, SCHEMAS)
    verified = unseal_any(sealed.key, sealed.value, sealed.headers, keyring_for(SIGNER), SCHEMAS, CODES)
    return FeedRecord(f"alerts.{name}", partition, offset, int(created.timestamp() * 1000), sealed.key,
                      list(sealed.headers), sealed.value, verified, None)  # type: ignore[arg-type]


def failed_record(detail: str, *, written: datetime = NOW, offset: int = 0) -> FeedRecord:
    return FeedRecord("alerts.suspicious-container", 0, offset, int(written.timestamp() * 1000), b"key", [], b"",
                      None, VerificationError(detail, RejectReason.BAD_SIGNATURE))


def router_headers(reason: str, detail: str, offset: int) -> list[tuple[str, bytes | None]]:
    """The five headers the router appends to every dead letter (docs/wire-format.md, R.2)."""
    return [("bus_reject_reason", reason.encode()), ("bus_reject_detail", detail.encode()),
            ("bus_source_topic", b"alerts.suspicious-container"), ("bus_source_partition", b"3"),
            ("bus_source_offset", str(offset).encode())]


def dead_letter(reason: str, detail: str, *, offset: int = 0, forged: bool = False,
                written: datetime = NOW) -> FeedRecord:
    """A dead-letter copy of a genuine, signed alert (its signature verifies today)."""
    sealed = seal(example("suspicious-container"), SIGNER, SCHEMAS)
    sender = [("bus_reject_reason", b"none"), ("bus_reject_detail", b"all fine")] if forged else []
    return FeedRecord("dlq.rejected", 0, offset, int(written.timestamp() * 1000), sealed.key,
                      [*sealed.headers, *sender, *router_headers(reason, detail, offset)], sealed.value, None, None)


def bounded_letter(offset: int = 0) -> FeedRecord:
    summary = {"form": "bounded", "reason": "oversized", "why": "record of 1048400 bytes",
               "source": {"topic": "alerts.suspicious-container", "partition": 3, "offset": offset},
               "size": 1048401, "key": None, "value": {"len": 1048400, "sha256": "ab" * 32}}
    headers = [*router_headers("oversized", "record of 1048400 bytes is over the limit", offset),
               ("bus_dead_letter_form", b"bounded")]
    return FeedRecord("dlq.rejected", 1, offset, int(NOW.timestamp() * 1000), None, headers,
                      json.dumps(summary).encode(), None, None)


def printed(records: list[FeedRecord], width: int, *, dead_letters: bool = False,
            colours: bool = False) -> Console:
    """What `bus tail` prints for `records` on a terminal `width` columns wide (rich's recording)."""
    console = Console(width=width, record=True, force_terminal=colours, color_system="truecolor" if colours else None,
                      file=io.StringIO())
    printer = TailPrinter(console, as_json=False, dead_letters=dead_letters, alert_type=None)
    printer.header()
    printer.take(records)
    printer.flush()
    printer.summary()
    return console


def printed_json(records: list[FeedRecord], *, dead_letters: bool = False) -> list[dict]:
    lines: list[str] = []
    console = Console(record=True, file=io.StringIO())
    printer = TailPrinter(console, as_json=True, dead_letters=dead_letters, alert_type=None, write=lines.append)
    printer.header()
    printer.take(records)
    printer.flush()
    printer.summary()
    assert console.export_text() == "", "nothing but JSON lines"
    return [json.loads(line) for line in lines]


def lines_of(console: Console) -> list[str]:
    return console.export_text(clear=False).splitlines()


def mixed_records() -> list[FeedRecord]:
    return [
        verified_record(tlp="RED", handling_codes=["H1", "H3"], h3_conditions=H3, offset=1),
        verified_record("operation-notice", partition=2, created=NOW - timedelta(hours=1)),
        verified_record("corruption-indicator", partition=4, created=NOW - timedelta(minutes=5), tlp="GREEN"),
        failed_record("the signature does not verify with key 0123456789abcdef0123456789abcdef " * 3),
    ]


# -- width -----------------------------------------------------------------------------------------


MIXED = mixed_records()
LETTERS = [dead_letter("replay", "x" * 400), bounded_letter(), dead_letter("key-not-owned-by-producer", "y")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(min_value=20, max_value=320))
def test_no_line_is_ever_wider_than_the_terminal(width):
    for spec, rows in ((ALERTS, [alert_row(r) for r in MIXED]),
                       (DEAD_LETTERS, [dead_letter_row(r, dead_letter_of(r)) for r in LETTERS])):
        layout = fit(spec, width)
        assert layout.header(spec).cell_len <= width
        for row in rows:
            for line in row.lines(layout):
                assert line.cell_len <= width, (width, line.plain)


def test_at_100_columns_nothing_wraps_and_the_h3_conditions_are_read_in_full():
    lines = lines_of(printed(mixed_records(), 100))
    assert all(len(line) <= 100 for line in lines)
    rows = [line for line in lines if line.startswith(("✔", "✘"))]
    assert len(rows) == 4, "one line per record, then what did not fit beside it"
    text = " ".join(" ".join(lines).split())
    assert H3 in text, "an H3 condition is wrapped, never cut"


def test_at_200_columns_the_summary_sits_in_the_row_and_uses_the_room():
    record = verified_record("operation-notice")
    summary = record.verified.alert.header.summary  # type: ignore[union-attr]
    [header, row, *_] = lines_of(printed([record], 200))
    assert "SUMMARY" in header and "KEY" in header
    assert len(row) > 150 and summary[:70] in row
    assert "TLP:AMBER+STRICT" in row and "operation-notice" in row


def test_a_narrow_column_uses_one_short_spelling_for_every_row():
    layout = fit(ALERTS, 100)
    assert "tlp" in layout.narrow and layout.below == "summary"
    lines = lines_of(printed([verified_record(tlp="RED"), verified_record("operation-notice")], 100))
    assert not any("TLP:" in line for line in lines[1:3]), "AMBER+STRICT does not fit as TLP:AMBER+STRICT"
    assert any(" RED " in line for line in lines) and any("AMBER+STRICT" in line for line in lines)


def test_columns_give_way_in_order_and_the_widest_layout_keeps_them_all():
    wide = fit(ALERTS, 250)
    assert wide.names == tuple(c.name for c in ALERTS.columns) and wide.below is None and not wide.narrow
    narrow = fit(ALERTS, 60)
    assert "key" not in narrow.names and "producer" not in narrow.names and "tlp" in narrow.names
    assert "status" in fit(DEAD_LETTERS, 40).names


# -- order -----------------------------------------------------------------------------------------


def test_partitions_are_interleaved_by_creation_time():
    times = [NOW - timedelta(minutes=m) for m in (7, 1, 30, 12, 3, 20)]
    records = [verified_record(partition=i % 3, offset=i, created=t, summary=f"alert number {i} of six")
               for i, t in enumerate(times)]
    lines = lines_of(printed(records, 200))
    shown = [int(m.group(1)) for line in lines if (m := re.search(r"alert number (\d)", line))]
    assert shown == sorted(range(6), key=lambda i: times[i])


@settings(max_examples=25, deadline=None)
@given(seed=st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_order_records_were_read(seed: random.Random):
    records = [verified_record(partition=i % 2, offset=i, created=NOW - timedelta(seconds=17 * i),
                               summary=f"alert number {i} of five") for i in range(5)]
    records.append(failed_record("no trust", written=NOW - timedelta(seconds=30), offset=9))
    reference = printed_json(records)
    shuffled = records[:]
    seed.shuffle(shuffled)
    assert printed_json(shuffled) == reference and len(reference) == 6
    times = [r["alert"]["header"]["created"] if r["verified"] else r["written"] for r in reference]
    assert [datetime.fromisoformat(t) for t in times] == sorted(datetime.fromisoformat(t) for t in times)


def test_a_failed_record_is_placed_by_when_it_was_written_not_by_what_it_claims():
    rec = failed_record("forged", written=NOW - timedelta(days=1))
    assert alert_row(rec).time == NOW - timedelta(days=1)


# -- colours and handling codes --------------------------------------------------------------------


@pytest.mark.parametrize("tlp", list(Tlp))
def test_tlp_labels_are_drawn_in_their_tlp_2_colours_on_black(tlp):
    console = printed([verified_record(tlp=tlp.value)], 200, colours=True)
    html = console.export_html(inline_styles=True)
    label = re.search(r'<span style="([^"]*)">TLP:' + re.escape(tlp.value) + "</span>", html)
    assert label is not None, "the label alone is coloured, not the padding after it"
    style = label.group(1).lower()
    assert f"color: {TLP_COLOURS[tlp].lower()}" in style and "background-color: #000000" in style, style


def test_the_official_colours_are_those_of_the_console():
    from bus.web.console.views import TLP_COLOURS as CONSOLE

    assert {t.value: c for t, c in TLP_COLOURS.items()} == CONSOLE


def test_handling_codes_are_shown_and_h3_stands_out():
    console = printed([verified_record(tlp="RED", handling_codes=["H1", "H3"], h3_conditions=H3)], 200,
                      colours=True)
    [row] = [line for line in lines_of(console) if line.startswith("✔")]
    assert " H1 H3 " in row
    assert "H3 conditions:" in console.export_text(clear=False)
    html = console.export_html(inline_styles=True)
    assert re.search(r'<span style="[^"]*font-weight: bold[^"]*">H3</span>', html)


def test_an_escape_sequence_in_a_record_is_shown_not_obeyed():
    hostile = dead_letter("bad-schema", "ce_id \x1b[2J\x1b]0;owned\x07 is not a UUID")
    console = printed([hostile], 120, dead_letters=True)
    text = console.export_text(clear=False)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[2J" in text
    assert printable("a\nb\tc\x00") == "a b c\\x00"


# -- --since and --group ---------------------------------------------------------------------------


UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@given(amount=st.integers(min_value=0, max_value=10_000), unit=st.sampled_from(sorted(UNIT_SECONDS)))
def test_a_duration_goes_back_from_now(amount, unit):
    assert parse_since(f"{amount}{unit}", NOW) == NOW - timedelta(seconds=amount * UNIT_SECONDS[unit])


def test_one_hour_and_two_days():
    assert parse_since("1h", NOW) == NOW - timedelta(hours=1)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)


@given(when=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31),
                         timezones=st.sampled_from([UTC, None])).map(lambda d: d.replace(microsecond=0)))
def test_iso_times_with_and_without_z_are_utc(when):
    naive = when.replace(tzinfo=None)
    expected = naive.replace(tzinfo=UTC)
    assert parse_since(naive.isoformat(), NOW) == expected
    assert parse_since(naive.isoformat() + "Z", NOW) == expected
    assert parse_since(expected.isoformat(), NOW) == expected
    assert parse_since(naive.date().isoformat(), NOW) == expected.replace(hour=0, minute=0, second=0)
    assert parse_since((expected + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00", NOW) == expected


@given(text=st.text(max_size=40))
def test_anything_else_is_an_error_naming_the_accepted_forms(text):
    try:
        when = parse_since(text, NOW)
    except InvalidInput as exc:
        message = str(exc)
        assert message.startswith("--since") and "1h" in message and "2d" in message and "Z" in message
        assert "\n" not in message
    else:
        assert when.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "1 hour", "-1h", "1y", "2026-13-01", "10:00", ""])
def test_common_mistakes_are_refused(text):
    with pytest.raises(InvalidInput, match="--since"):
        parse_since(text, NOW)


def test_a_group_is_under_the_members_own_prefix():
    secured = KafkaSettings(sasl_username="nl-customs")
    assert group_id_for(secured, "desk") == "nl-customs.desk"
    assert group_id_for(secured, "nl-customs.desk") == "nl-customs.desk"
    assert group_id_for(KafkaSettings(), "desk") == "desk"
    with pytest.raises(InvalidInput, match="--group"):
        group_id_for(secured, "a group")


# -- dead letters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["replay", "stale", "future", "expired"])
def test_a_dead_letter_shows_the_routers_reason_and_is_never_verified(reason):
    detail = f"the router's own words on a {reason} alert"
    record = dead_letter(reason, detail, forged=True)
    lines = lines_of(printed([record], 200, dead_letters=True))
    [at] = [i for i, line in enumerate(lines) if line.startswith("✘")]
    assert lines[at].startswith(f"✘ {reason} ") and "alerts.suspicious-container[3]@0" in lines[at]
    assert lines[at + 1].strip() == detail, "the router's detail, in full, under its row"
    assert "verified" not in " ".join(lines) and "✔" not in " ".join(lines)
    assert "none" not in lines[at] and "all fine" not in " ".join(lines), "the sender's forged verdict is not shown"
    line = dead_letter_dict(record, dead_letter_of(record))
    assert line["verified"] is False and line["reason"] == reason and line["error"] == detail
    assert line["verified_now"] is None, "nothing was checked today without trust options"
    assert line["dead_letter"]["source"] == {"topic": "alerts.suspicious-container", "partition": 3, "offset": 0}
    assert line["dead_letter"]["form"] == "copy"
    assert line["dead_letter"]["claimed"]["producer"] == "NL-CUSTOMS"
    assert line["dead_letter"]["claimed"]["type"] == "suspicious-container"


def test_a_bounded_dead_letter_shows_its_summary():
    record = bounded_letter(offset=41)
    letter = dead_letter_of(record)
    assert letter.bounded and letter.reason == "oversized" and letter.summary is not None
    assert letter.summary["size"] == 1048401
    row, detail = (line.plain for line in dead_letter_row(record, letter).lines(fit(DEAD_LETTERS, 200)))
    assert row.startswith("✘ oversized") and row.endswith("[3]@41")
    assert detail.strip() == "[bounded] record of 1048400 bytes is over the limit"
    assert dead_letter_dict(record, letter)["dead_letter"]["summary"]["value"]["len"] == 1048400


def test_a_record_without_the_routers_headers_says_so():
    sealed = seal(example("suspicious-container"), SIGNER, SCHEMAS)
    record = FeedRecord("dlq.rejected", 0, 5, 0, sealed.key, list(sealed.headers), sealed.value, None, None)
    lines = lines_of(printed([record], 200, dead_letters=True))
    assert any("no reason recorded" in line for line in lines)
    assert dead_letter_dict(record, dead_letter_of(record))["reason"] is None


def test_dead_letters_are_ordered_by_when_they_were_rejected():
    late = dead_letter("stale", "second", offset=1, written=NOW)
    early = dead_letter("future", "first", offset=2, written=NOW - timedelta(minutes=3))
    lines = [line for line in lines_of(printed([late, early], 200, dead_letters=True)) if line.startswith("✘")]
    assert ["future" in lines[0], "stale" in lines[1]] == [True, True]


# -- following -------------------------------------------------------------------------------------


class ScriptedFeed:
    """A reader that hands out prepared batches (with whether it had caught up after each), then
    is interrupted as Ctrl-C would: the order of prints and commits is what is checked."""

    def __init__(self, script: list[tuple[list[FeedRecord], bool]], events: list[str]) -> None:
        self.script, self.events, self._caught_up = script, events, False

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    def batches(self):
        for batch, caught_up in self.script:
            self._caught_up = caught_up
            yield batch
        raise KeyboardInterrupt

    def commit(self) -> None:
        self.events.append("commit")


def test_following_prints_the_backlog_in_time_order_then_each_poll_and_saves_after_printing():
    def alert(n: int, minutes_ago: int, partition: int) -> FeedRecord:
        return verified_record(partition=partition, offset=n, created=NOW - timedelta(minutes=minutes_ago),
                               summary=f"alert number {n} arrived")

    backlog = [alert(0, 30, 0), alert(1, 50, 1)], [alert(2, 40, 2)]
    late = [alert(3, 60, 0)]  # created before everything else, but read after the backlog
    events: list[str] = []
    printer = TailPrinter(Console(file=io.StringIO()), as_json=True, dead_letters=False, alert_type=None,
                          write=lambda line: events.append(json.loads(line)["alert"]["header"]["summary"].split()[2]))
    feed = ScriptedFeed([(backlog[0], False), (backlog[1], True), ([], True), (late, True), ([], True)], events)
    print_feed(feed, printer, follow=True)
    assert events[:4] == ["1", "2", "0", "commit"], "the backlog sorted, then its place saved"
    assert [e for e in events[4:] if e != "commit"] == ["3"], "a late record is printed when it arrives"
    assert events.index("3") < len(events) - 1 - events[::-1].index("commit"), "and saved after it is printed"


def test_an_error_prints_what_was_read_and_saves_nothing():
    events: list[str] = []

    class Failing(ScriptedFeed):
        def batches(self):
            yield [verified_record(summary="read before the broker went away")]
            raise InvalidInput("the broker went away")

    printer = TailPrinter(Console(file=io.StringIO()), as_json=True, dead_letters=False, alert_type=None,
                          write=lambda line: events.append("printed"))
    with pytest.raises(InvalidInput):
        print_feed(Failing([], events), printer, follow=False)
    assert events == ["printed"]
