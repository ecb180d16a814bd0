"""`bus audit verify|tail`: walk the hash-chained audit trail."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bus.cli._common import KafkaSettings, handle_errors, kafka_options, out
from bus.core.audit import verify_chain

app = typer.Typer(no_args_is_help=True)


def _audit_records(settings: KafkaSettings, topic: str):  # type: ignore[no-untyped-def]
    from bus.adapters.kafka_legacy import read_to_end

    return read_to_end(settings, topic)


@app.command()
@kafka_options
@handle_errors
def verify(
    topic: Annotated[str, typer.Option("--topic", help="Audit topic.")] = "audit",
    *,
    settings: KafkaSettings,
) -> None:
    """Check every link of the chain; report the first break and exit 1."""
    count, brk = verify_chain((m.offset, m.value) for m in _audit_records(settings, topic))
    if brk is None:
        out.print(f"[green]audit chain intact[/]: {count} entries on {topic}")
        return
    out.print(f"[red]audit chain broken[/] at offset {brk.offset} (entry #{brk.position + 1}, "
              f"seq {brk.seq}): {brk.problem}")
    raise typer.Exit(1)


@app.command()
@kafka_options
@handle_errors
def tail(
    topic: Annotated[str, typer.Option("--topic", help="Audit topic.")] = "audit",
    as_json: Annotated[bool, typer.Option("--json", help="Raw JSON entries.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Print audit entries: who sent what, and who received it under which rule."""
    for m in _audit_records(settings, topic):
        entry = json.loads(m.value)
        if as_json:
            print(json.dumps(entry))
            continue
        outcome = entry.get("outcome")
        who = ", ".join(entry.get("recipients", [])) or "-"
        extra = f"recipients: {who}" if outcome == "routed" else f"reason: {entry.get('reason')}"
        out.print(f"#{entry['seq']:<6} {entry.get('routed_at', '')}  {outcome:<8} {entry.get('alert_type') or '?':<21} "
                  f"{entry.get('producer') or '?':<20} {entry.get('message_id')}  {extra}", highlight=False)
