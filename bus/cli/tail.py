"""`bus tail`: print a topic's records with their verification result, in time order.

For a liaison officer at a terminal: one row per record, fitted to the terminal's width,
TLP in its TLP 2.0 colours, handling codes in their own column and H3 conditions in full
under the alert. The README's "bus tail" section documents the output.

- **Time order.** Rows are ordered by creation time (the signed `created` of a verified or
  sealed alert; for a record that failed verification, when it was written, since what it
  claims is not to be trusted; unknown times last). Partitions are interleaved by that
  time within what has been read: without `--follow`, everything read (up to the end the
  topic had when the command started); with `--follow`, that backlog first, then each
  poll's new records as they arrive. A record that arrives late is printed late, never
  held back. At most `MAX_PENDING` rows wait to be sorted: a bigger backlog is printed in
  sorted chunks of that many.
- **`--group NAME`** keeps the officer's place in consumer group `<user>.NAME` (the member's
  own prefix on a secured cluster; `NAME` on a development broker). The place is saved after
  rows are printed; `--from-beginning` and `--since` start a new place.
- **`dlq.rejected`** is shown as the router recorded it (`bus.cli._tail_dead_letters`): the
  router's reason and detail, where the record was read, what it claimed. It is never
  re-verified against today's directory, so no dead letter is ever shown as verified.

Encrypted alerts are verified like any other; with `--decrypt-key` (the member's
`<MEMBER>.enc.key`, repeatable after a rotation) they are decrypted too. Without
it, or for a member that was not named, only the clear routing facts are shown.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console

from bus.cli._common import (
    AcceptV10UntilOpt,
    AuthorityPubOpt,
    DecryptKeysOpt,
    FederationOpt,
    KafkaSettings,
    handle_errors,
    kafka_options,
    out,
)
from bus.cli._tail_dead_letters import DeadLetter, dead_letter_of, is_dead_letter_topic
from bus.cli._tail_rows import (
    ALERTS,
    DEAD_LETTERS,
    UNREADABLE,
    Layout,
    Row,
    TableSpec,
    alert_row,
    dead_letter_row,
    fit,
    order_key,
)
from bus.cli._tail_since import ACCEPTED, parse_since
from bus.core.confidential import Decryptor
from bus.core.envelope import claimed_alert_type
from bus.core.models import AlertType
from bus.core.topology import member_group
from bus.errors import BusError, InvalidInput, RejectReason
from bus.services.reader import FeedRecord

MAX_PENDING = 50_000
"""Rows held back to be sorted by time before some are printed (bounds the memory a long backlog takes)."""
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def claimed_type(rec: FeedRecord) -> str | None:
    """The verified type, or for a record that failed verification the type its header claims."""
    if rec.verified is not None:
        return rec.verified.alert.alert_type.value
    if rec.envelope is not None:
        return rec.envelope.alert_type.value
    value = rec.header("ce_type")
    return claimed_alert_type(value.decode(errors="replace")) if value is not None else None


def _written(rec: FeedRecord) -> str | None:
    if rec.timestamp_ms is None:
        return None
    return datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def record_dict(rec: FeedRecord) -> dict[str, Any]:
    """One JSON line of `bus tail --json` for an alert topic or a feed."""
    base: dict[str, Any] = {
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "written": _written(rec),
        "key": rec.key.decode(errors="replace") if rec.key is not None else None,
        "verified": rec.ok,
    }
    if rec.verified is not None:
        v = rec.verified
        base.update(key_id=v.key_id, alert=v.alert.model_dump(mode="json"), encrypted=v.encrypted)
    elif rec.envelope is not None:
        e = rec.envelope
        base.update(key_id=e.key_id, encrypted=True, signature_verified=True,
                    clear_header=e.header.model_dump(mode="json"),
                    wrapped_for={w.member: w.key_id for w in e.recipients})
    if rec.error is not None:
        base.update(reason=str(rec.error.reason), error=rec.error.detail)
    return base


def dead_letter_dict(rec: FeedRecord, letter: DeadLetter | None, *, checked_now: bool = False) -> dict[str, Any]:
    """One JSON line of `bus tail dlq.rejected --json`: the router's verdict, never today's.

    `checked_now` (trust options were given): `verified_now` says whether the copy's signature
    verifies against them today, a fact about the bytes (an authentic replay, or a forgery?),
    never the verdict; null otherwise.
    """
    base: dict[str, Any] = {
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "written": _written(rec),
        "key": rec.key.decode(errors="replace") if rec.key is not None else None,
        "verified": False,
        "verified_now": rec.ok if checked_now else None,
    }
    if letter is None:
        base.update(reason=str(RejectReason.UNDECODABLE), error=rec.error.detail if rec.error else None,
                    dead_letter=None)
    else:
        base.update(reason=letter.reason, error=letter.detail, dead_letter=letter.as_json())
    return base


def dead_letter_or_none(rec: FeedRecord) -> DeadLetter | None:
    """The router's record on a dead letter; None if the Kafka client could not read the dead letter."""
    if rec.error is not None and rec.error.reason == RejectReason.UNDECODABLE and not rec.headers:
        return None
    return dead_letter_of(rec)


def _print_line(line: str) -> None:
    """A JSON line on stdout as it is (not through rich, which would read markup and emoji codes)."""
    print(line, flush=True)


def row(rec: FeedRecord, width: int = 200) -> str:
    """An alert record as the table prints it at `width` columns, without colours (row and notes)."""
    layout = fit(ALERTS, width)
    return "\n".join(line.plain for line in alert_row(rec).lines(layout))


class TailPrinter:
    """Collects rows, prints them in time order when told, and counts what it printed."""

    def __init__(self, console: Console, *, as_json: bool, dead_letters: bool,
                 alert_type: AlertType | None, write: Callable[[str], None] | None = None,
                 checked_now: bool = False) -> None:
        self.console = console
        self.checked_now = checked_now
        self.write = write if write is not None else _print_line
        self.as_json = as_json
        self.dead_letters = dead_letters
        self.alert_type = alert_type
        self.spec: TableSpec = DEAD_LETTERS if dead_letters else ALERTS
        self.layout: Layout = fit(self.spec, console.width)
        self._pending: list[tuple[Row, str | None]] = []
        self.count = self.failed = self.sealed = 0
        self.reasons: Counter[str] = Counter()

    def header(self) -> None:
        if not self.as_json:
            self.console.print(self.layout.header(self.spec), highlight=False, no_wrap=True, crop=True)

    def take(self, records: Iterable[FeedRecord]) -> None:
        for rec in records:
            if self.alert_type is not None and self._type_of(rec) != self.alert_type.value:
                continue
            self.count += 1
            if self.dead_letters:
                letter = dead_letter_or_none(rec)
                self.reasons[(letter.reason or "(none recorded)") if letter else "(unreadable)"] += 1
                shown = dead_letter_row(rec, letter)
                line = json.dumps(dead_letter_dict(rec, letter, checked_now=self.checked_now)) \
                    if self.as_json else None
            else:
                unreadable = rec.error is not None and rec.error.reason in UNREADABLE
                self.sealed += unreadable
                self.failed += not rec.ok and not unreadable
                shown = alert_row(rec)
                line = json.dumps(record_dict(rec)) if self.as_json else None
            self._pending.append((shown, line))
        if len(self._pending) >= MAX_PENDING:
            self.flush()

    def _type_of(self, rec: FeedRecord) -> str | None:
        if self.dead_letters:
            letter = dead_letter_or_none(rec)
            return letter.claims.alert_type if letter is not None else None
        return claimed_type(rec)

    def flush(self) -> None:
        """Print every row taken so far, in time order."""
        pending, self._pending = self._pending, []
        pending.sort(key=lambda item: order_key(item[0]))
        for shown, line in pending:
            if line is not None:
                self.write(line)
                continue
            for text in shown.lines(self.layout):
                self.console.print(text, highlight=False, no_wrap=True, crop=True)

    def summary(self) -> None:
        if self.as_json:
            return
        if self.dead_letters:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.reasons.items()))
            self.console.print(f"[dim]{self.count} dead letter(s){': ' + reasons if reasons else ''} "
                               "(reason, detail: the router's; type, producer: claimed)[/]", highlight=False)
            return
        unread = f", {self.sealed} encrypted and not readable with the keys given" if self.sealed else ""
        self.console.print(f"[dim]{self.count} record(s), {self.failed} failed verification{unread}[/]",
                           highlight=False)


@kafka_options
@handle_errors
def tail(
    topic: Annotated[str, typer.Argument(help="e.g. feed.europol, alerts.suspicious-container or dlq.rejected")],
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="BUS_KEYS",
                                  help="Folder of <MEMBER>.pub files (not needed for dlq.rejected).")
    ] = None,
    federation: FederationOpt = None,
    authority_pub: AuthorityPubOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep waiting for new records.")] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record (with --group: a new place).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for machines (README: bus tail).")] = False,
    alert_type: Annotated[AlertType | None, typer.Option("--type", help="Only this alert type.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help=f"Only records written at or after this: {ACCEPTED}. "
                                     "With --group: a new place."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Resume where you left off: your place is kept in consumer group "
                                     "<user>.NAME and saved after records are printed."),
    ] = None,
    accept_v1_0_until: AcceptV10UntilOpt = None,
    decrypt_keys: DecryptKeysOpt = None,
    member: Annotated[
        str | None,
        typer.Option("--member", envvar="BUS_MEMBER",
                     help="The member the decryption keys belong to (default: from <MEMBER>.enc.key)."),
    ] = None,
    *,
    settings: KafkaSettings,
) -> None:
    """Verify and print each record in time order (a table fitted to the terminal, or JSON lines)."""
    from bus.cli._resolver import resolver_from
    from bus.composition import Bus
    from bus.core.keyring import Keyring
    from bus.core.signing import V1_0_ACCEPTED_UNTIL

    dead_letters = is_dead_letter_topic(topic)
    # A dead letter is shown as the router judged it; trust options, if given, only say whether
    # its bytes still verify today (`verified_now` in --json).
    trust_given = keys is not None or federation is not None
    checked_now = dead_letters and trust_given
    resolver = Keyring() if dead_letters and not trust_given else resolver_from(keys, federation, authority_pub)
    decryptor = None if dead_letters else decryptor_from(decrypt_keys or [], member)
    since_at = parse_since(since, datetime.now(UTC)) if since is not None else None
    group_id = group_id_for(settings, group) if group is not None else None
    start_at_beginning = from_beginning or since_at is not None or not follow
    window = V1_0_ACCEPTED_UNTIL if accept_v1_0_until is None else (
        accept_v1_0_until if accept_v1_0_until.tzinfo else accept_v1_0_until.replace(tzinfo=UTC))

    printer = TailPrinter(out, as_json=as_json, dead_letters=dead_letters, alert_type=alert_type,
                          checked_now=checked_now)
    with Bus(settings).feed_reader(topic, resolver, group_id=group_id, from_beginning=start_at_beginning,
                                   follow=follow, since=since_at, new_position=from_beginning, auto_commit=False,
                                   accept_v1_0_until=window, decryptor=decryptor) as reader:
        printer.header()
        print_feed(reader, printer, follow=follow)
    printer.summary()


class Feed(Protocol):
    """What `print_feed` needs of a `FeedReader`."""

    @property
    def caught_up(self) -> bool: ...

    def batches(self) -> Iterator[list[FeedRecord]]: ...

    def commit(self) -> None: ...


def print_feed(reader: Feed, printer: TailPrinter, *, follow: bool) -> None:
    """Print what `reader` gives in time order, saving the group's place after each print.

    Without `follow`: everything, sorted, at the end. With it: the backlog once it has been
    read (or once a poll finds nothing more), then each poll's records as they come. Ctrl-C
    prints what was read and saves the place; an error prints what was read, saves nothing.
    """
    backlog = True
    try:
        for batch in reader.batches():
            printer.take(batch)
            if follow and (not backlog or reader.caught_up or not batch):
                backlog = False
                printer.flush()
                reader.commit()
    except KeyboardInterrupt:
        pass
    finally:
        printer.flush()
    reader.commit()


def group_id_for(settings: KafkaSettings, name: str) -> str:
    """`--group NAME` -> the consumer group: under the connecting user's prefix (`<user>.NAME`)."""
    if not GROUP_NAME.fullmatch(name):
        raise InvalidInput(f"--group {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit", [("--group", "letters, digits, '.', '_', '-'")])
    return member_group(settings.sasl_username, name)


def decryptor_from(paths: list[Path], member: str | None) -> Decryptor | None:
    """The member's decryption keys, or None without --decrypt-key."""
    if not paths:
        return None
    from bus.adapters.keystore import load_decryption_key, member_of_encryption_key_file

    if member is None:
        named = {member_of_encryption_key_file(p) for p in paths}
        if len(named) != 1 or None in named:
            raise BusError("--decrypt-key: say whose keys these are with --member (or name the files "
                           "<MEMBER>.enc.key)")
        member = named.pop()
    assert member is not None
    return Decryptor.of(load_decryption_key(p, member) for p in paths)


def register(app: typer.Typer) -> None:
    app.command("tail")(tail)
