"""`bus tail`: print a topic's records with their verification result.

Encrypted alerts are verified like any other; with `--decrypt-key` (the member's
`<MEMBER>.enc.key`, repeatable after a rotation) they are decrypted too. Without
it, or for a member that was not named, only the clear routing facts are shown.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bus.cli._common import KafkaSettings, handle_errors, kafka_options, out
from bus.core.confidential import Decryptor
from bus.core.envelope import claimed_alert_type
from bus.core.models import AlertType
from bus.core.topology import DLQ_TOPIC
from bus.errors import BusError, RejectReason
from bus.services.reader import FeedRecord

#: Verified, but not for these keys: counted apart from records that failed verification.
UNREADABLE = frozenset({RejectReason.ENCRYPTED, RejectReason.NOT_A_RECIPIENT, RejectReason.NO_DECRYPTION_KEY})
COLUMNS = "{status:<22} {time:<20} {type:<21} {producer:<20} {tlp:<17} {key:<16} {summary}"


def claimed_type(rec: FeedRecord) -> str | None:
    """The verified type, or for a record that failed verification the type its header claims."""
    if rec.verified is not None:
        return rec.verified.alert.alert_type.value
    if rec.envelope is not None:
        return rec.envelope.alert_type.value
    value = rec.header("ce_type")
    return claimed_alert_type(value.decode(errors="replace")) if value is not None else None


def dead_letter(rec: FeedRecord) -> dict[str, Any] | None:
    """What the router recorded on a dead letter (its reason, detail and source), or None.

    On `dlq.rejected` these headers are the router's own (it drops any a sender wrote), and
    they are what the record is shown with: verifying it again against today's directory
    says nothing about why it was rejected then (a replay verifies fine).
    """
    if rec.topic != DLQ_TOPIC:
        return None
    reason = rec.header("bus_reject_reason")
    if reason is None:
        return None

    def text(name: str) -> str | None:
        value = rec.header(name)
        return value.decode("utf-8", "replace") if value is not None else None

    partition, offset = text("bus_source_partition"), text("bus_source_offset")
    return {
        "reason": reason.decode("utf-8", "replace"), "detail": text("bus_reject_detail") or "",
        "source": {"topic": text("bus_source_topic"),
                   "partition": int(partition) if partition and partition.isdigit() else partition,
                   "offset": int(offset) if offset and offset.isdigit() else offset},
        "form": text("bus_dead_letter_form") or "copy",
    }


def record_dict(rec: FeedRecord) -> dict[str, Any]:
    base: dict[str, Any] = {
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
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
    rejected = dead_letter(rec)
    if rejected is not None:  # the router's verdict, not today's re-verification
        base.update(reason=rejected["reason"], error=rejected["detail"], rejected_from=rejected["source"],
                    dead_letter_form=rejected["form"], verified_now=rec.ok)
    return base


def row(rec: FeedRecord) -> str:
    if rec.verified is not None:
        h = rec.verified.alert.header
        status = "[green]✔ decrypted[/]" if rec.verified.encrypted else "[green]✔ verified[/]"
        fields = {
            "time": h.created.strftime("%Y-%m-%d %H:%M:%S"), "type": h.alert_type.value,
            "producer": h.producer, "tlp": f"TLP:{h.tlp.value}",
            "summary": escape(h.summary[:80]),
        }
    elif rec.envelope is not None:
        c = rec.envelope.header
        assert rec.error is not None
        status = ("[yellow]⊘ encrypted[/]" if rec.error.reason == RejectReason.ENCRYPTED
                  else f"[red]✘ {rec.error.reason}[/]")
        fields = {
            "time": c.created.strftime("%Y-%m-%d %H:%M:%S"), "type": c.alert_type.value,
            "producer": c.producer, "tlp": f"TLP:{c.tlp.value}",
            "summary": escape(f"(encrypted for {', '.join(c.release_to)})"[:80]),
        }
    else:
        assert rec.error is not None
        status = f"[red]✘ {rec.error.reason}[/]"
        when = "?" if rec.timestamp_ms is None else \
            datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        fields = {"time": when, "type": "?", "producer": "?", "tlp": "", "summary": escape(rec.error.detail[:80])}
    rejected = dead_letter(rec)
    if rejected is not None:
        status = f"[red]✘ {escape(rejected['reason'])}[/]"
        fields["summary"] = escape(f"{rejected['detail']} (from {rejected['source']['topic']}"
                                   f"[{rejected['source']['partition']}]@{rejected['source']['offset']})"[:120])
    key = (rec.key or b"").decode(errors="replace")[:16]
    # pad the markup-free width of the status column by hand
    plain = status.split("]", 1)[1].rsplit("[", 1)[0]
    return status + " " * max(1, 23 - len(plain)) + COLUMNS.split(" ", 1)[1].format(key=escape(key), **fields)


@kafka_options
@handle_errors
def tail(
    topic: Annotated[str, typer.Argument(help="e.g. alerts.suspicious-container or feed.europol")],
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="BUS_KEYS", help="Folder of <MEMBER>.pub files.")
    ] = None,
    federation: Annotated[
        Path | None, typer.Option("--federation", envvar="BUS_FEDERATION", help="Signed federation directory.")
    ] = None,
    authority_pub: Annotated[
        Path | None, typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB", help="Federation authority key.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep waiting for new records.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest record.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for machines.")] = False,
    alert_type: Annotated[AlertType | None, typer.Option("--type", help="Only this alert type.")] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="Only records written at or after this time (UTC).")
    ] = None,
    accept_v1_0_until: Annotated[
        datetime | None, typer.Option("--accept-v1-0-until", envvar="BUS_ACCEPT_V1_0_UNTIL",
                                      formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                                      help="End of the wire format 1.0 transition window (UTC; "
                                           "default 2027-06-01): 1.0 records created later are refused.")
    ] = None,
    decrypt_keys: Annotated[
        list[Path] | None,
        typer.Option("--decrypt-key", help="Your X25519 private key (<MEMBER>.enc.key) to read encrypted "
                     "alerts; repeat it to include keys rotated out."),
    ] = None,
    member: Annotated[
        str | None,
        typer.Option("--member", envvar="BUS_MEMBER",
                     help="The member the decryption keys belong to (default: from <MEMBER>.enc.key)."),
    ] = None,
    *,
    settings: KafkaSettings,
) -> None:
    """Verify and print each record (readable table, or JSON lines with --json)."""
    from bus.cli._resolver import resolver_from
    from bus.composition import Bus

    resolver = resolver_from(keys, federation, authority_pub)
    decryptor = decryptor_from(decrypt_keys or [], member)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    start_at_beginning = from_beginning or since is not None or not follow
    if not as_json:
        out.print(
            "[bold]" + COLUMNS.format(status="STATUS", time="CREATED (UTC)", type="TYPE",
                                      producer="PRODUCER", tlp="TLP", key="KEY", summary="SUMMARY") + "[/]",
            highlight=False,
        )
    count = bad = sealed = 0
    from bus.core.signing import V1_0_ACCEPTED_UNTIL

    window = V1_0_ACCEPTED_UNTIL if accept_v1_0_until is None else (
        accept_v1_0_until if accept_v1_0_until.tzinfo else accept_v1_0_until.replace(tzinfo=UTC))
    with Bus(settings).feed_reader(topic, resolver, from_beginning=start_at_beginning, follow=follow,
                                   since=since, accept_v1_0_until=window, decryptor=decryptor) as reader:
        try:
            for rec in reader.records():
                if alert_type and claimed_type(rec) != alert_type.value:
                    continue
                count += 1
                unreadable = rec.error is not None and rec.error.reason in UNREADABLE
                sealed += unreadable
                bad += (not rec.ok and not unreadable) or dead_letter(rec) is not None
                if as_json:
                    print(json.dumps(record_dict(rec)), flush=True)
                else:
                    out.print(row(rec), highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            pass
    if not as_json:
        unread = f", {sealed} encrypted and not readable with the keys given" if sealed else ""
        what = "rejected by the router (its recorded reason shown)" if topic == DLQ_TOPIC else "failed verification"
        out.print(f"[dim]{count} record(s), {bad} {what}{unread}[/]")


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
