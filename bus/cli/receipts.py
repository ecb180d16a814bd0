"""`bus receipts` (what became of my records) and `bus ack` (tell an originator I used its alert)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bus.cli._common import AuthorityPubOpt, KafkaSettings, handle_errors, kafka_options, out
from bus.cli._untrusted import shown
from bus.core.receipts import AckStatus
from bus.errors import BusError

MemberOpt = Annotated[str, typer.Option("--member", envvar="BUS_MEMBER", help="Your member id.")]
FederationOpt = Annotated[
    Path | None, typer.Option("--federation", envvar="BUS_FEDERATION",
                              help="Signed federation directory (router keys that sign receipts).")
]


def parse_since(text: str) -> datetime:
    """`1h`, `30m`, `2d` (ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    from bus.cli.router import parse_duration

    text = text.strip()
    try:
        return datetime.now(UTC) - parse_duration(text)
    except BusError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BusError(f"--since {text!r}: give a duration such as 30m, 1h, 2d or a time such as "
                       "2026-01-31T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def directory_of(federation: Path | None, authority_pub: Path | None) -> Any:
    if federation is None or authority_pub is None:
        raise BusError("receipts are verified with the router keys listed in the federation directory: "
                       "give --federation and --authority-pub (or BUS_FEDERATION, BUS_AUTHORITY_PUB)")
    from bus.adapters.federation_file import load_verified_directory

    return load_verified_directory(federation, authority_pub)


def receipt_json(record: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"offset": record.offset, "kind": record.kind}
    if record.error is not None:
        return {**base, "verified": False, "reason": str(record.error.reason), "error": record.error.detail}
    if record.ack is not None:
        ack = record.ack
        return {**base, "verified": True, "message_id": ack.message_id, "status": ack.status.value,
                "member": ack.member, "note": ack.note, "acked_at": ack.time.isoformat()}
    return {**base, "verified": True, "router_id": record.receipt.router_id, **record.receipt.value}


@kafka_options
@handle_errors
def receipts(
    member: MemberOpt,
    federation: FederationOpt = None,
    authority_pub: AuthorityPubOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="From this long ago (1h, 2d) or this time.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep waiting for new receipts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Your receipts: each record you sent, routed (to how many, to whom) or rejected (and why);
    acknowledgements recipients sent about your alerts; audit proofs. All verified."""
    from bus.composition import Bus
    from bus.services.receipts import describe

    directory = directory_of(federation, authority_pub)
    with Bus(settings).receipt_reader(member, directory) as reader:
        for record in reader.records(since=parse_since(since) if since else None, follow=follow):
            if as_json:
                print(json.dumps(receipt_json(record), default=str), flush=True)
            else:
                style = "red" if record.kind == "invalid" or "rejected" in describe(record)[:9] else ""
                line = shown(describe(record))
                out.print(f"[{style}]{line}[/]" if style else line, highlight=False)


@kafka_options
@handle_errors
def ack(
    message_id: Annotated[str, typer.Argument(help="The alert's message id (ce_id).")],
    status: Annotated[AckStatus, typer.Option("--status", help="seen, actioned, useful or false-positive.")],
    member: MemberOpt,
    key: Annotated[Path, typer.Option("--key", envvar="BUS_KEY", help="Your Ed25519 private key (PEM).")],
    note: Annotated[str | None, typer.Option("--note", help="A short note for the originator.")] = None,
    feed: Annotated[
        str | None, typer.Option("--feed", help="Your feed topic, where the alert was delivered "
                                                "(default feed.<member>).")
    ] = None,
    *,
    settings: KafkaSettings,
) -> None:
    """Acknowledge an alert you received: the router checks you received it and tells its originator."""
    from bus.adapters.keystore import load_signing_key
    from bus.composition import Bus

    signer = load_signing_key(key, member)
    with Bus(settings).acknowledger(signer, feed=feed) as acknowledger:
        done = acknowledger.ack(message_id, status, note)
    out.print(f"acknowledged {done.message_id} as {done.status.value}: acks partition {done.delivery.partition} "
              f"offset {done.delivery.offset}; the originator sees it in its receipts once routed", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("receipts")(receipts)
    app.command("ack")(ack)
