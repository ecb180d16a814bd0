"""`bus audit verify|tail`: check and read the audit trail (one hash chain per routing task)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bus.cli._common import AuthorityPubOpt, KafkaSettings, handle_errors, kafka_options, out
from bus.cli._untrusted import shown
from bus.errors import AuditFailed, BusError

app = typer.Typer(no_args_is_help=True)

FederationOpt = Annotated[
    Path | None, typer.Option("--federation", envvar="BUS_FEDERATION",
                              help="Signed federation directory: the routers' keys that sign checkpoints.")
]


def _directory(federation: Path | None, authority_pub: Path | None):  # type: ignore[no-untyped-def]
    if federation is None or authority_pub is None:
        raise BusError("checkpoints are signed by router keys listed in the federation directory: "
                       "give --federation and --authority-pub (or BUS_FEDERATION, BUS_AUTHORITY_PUB)")
    from bus.adapters.federation_file import load_verified_directory

    return load_verified_directory(federation, authority_pub)


@app.command()
@kafka_options
@handle_errors
def verify(
    federation: FederationOpt = None,
    authority_pub: AuthorityPubOpt = None,
    member: Annotated[
        str | None, typer.Option("--member", help="Check only your own entries, from receipts.<member> and "
                                                  "audit.checkpoints (run as that member).")
    ] = None,
    topic: Annotated[str, typer.Option("--topic", help="Audit topic (the auditor's check).")] = "audit",
    checkpoints_topic: Annotated[
        str, typer.Option("--checkpoints-topic", help="Where checkpoints are published.")
    ] = "audit.checkpoints",
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Check every chain (seq, links, hashes; no fork, gap or rewrite) and every signed checkpoint.

    Exits 1 on any problem, and non-zero with "not authorised to read audit as <user>"
    when the topic cannot be read: never "intact" about what it did not see.
    """
    from bus.composition import Bus

    directory = _directory(federation, authority_pub)
    bus = Bus(settings)
    if member is not None:
        mreport = bus.verify_member_audit(member, directory)
        if as_json:
            print(json.dumps({"member": member, "ok": mreport.ok, "receipts": mreport.receipts,
                              "unverified_records": mreport.rejected_records,
                              "chains": {c: r.__dict__ for c, r in mreport.chains.items()}}))
        else:
            for mr in mreport.chains.values():
                mark = "[green]✔[/]" if mr.ok else "[red]✘[/]"
                out.print(f"{mark} chain {mr.chain}: {mr.entries} of your entries, {mr.proven} proven against signed "
                          f"checkpoints, {mr.pending} not yet covered; {mr.checkpoints} checkpoint(s)", highlight=False)
                for problem in mr.problems:
                    out.print(f"    [red]{shown(problem)}[/]", highlight=False)
            for problem in mreport.rejected_records:
                out.print(f"[red]receipt not verified[/]: {shown(problem)}", highlight=False)
        if not mreport.ok:
            raise AuditFailed(f"the audit entries about {member}'s records did not verify")
        if not as_json:
            out.print(f"[green]audit entries of {member} verified[/]: {mreport.receipts} receipt(s) over "
                      f"{len(mreport.chains)} chain(s)", highlight=False)
        return
    report = bus.verify_audit(directory, topic=topic, checkpoints_topic=checkpoints_topic)
    if as_json:
        print(json.dumps({"topic": topic, "ok": report.ok, "entries": report.entries,
                          "checkpoints_published": report.checkpoints_published, "problems": report.problems,
                          "chains": {c: r.__dict__ for c, r in report.chains.items()}}))
    else:
        for r in report.chains.values():
            if r.ok:
                out.print(f"[green]✔[/] chain {r.chain}: {r.entries} entries ({r.decisions} decisions, "
                          f"{r.checkpoints} checkpoints), last checkpoint at seq {r.last_checkpoint or '-'}, "
                          f"{r.uncovered} not yet covered", highlight=False)
            else:
                offset, seq = r.problem_at or (None, None)
                out.print(f"[red]✘ chain {r.chain} broken[/] at offset {offset} (seq {seq}): "
                          f"{shown(r.problem or '')}", highlight=False)
        for problem in report.problems:
            out.print(f"[red]✘[/] {shown(problem)}", highlight=False)
    if not report.ok:
        raise AuditFailed(f"audit trail on {topic} did not verify")
    if not as_json:
        out.print(f"[green]audit chain intact[/]: {report.entries} entries in {len(report.chains)} chain(s) on "
                  f"{topic}", highlight=False)


@app.command()
@kafka_options
@handle_errors
def tail(
    topic: Annotated[str, typer.Option("--topic", help="Audit topic.")] = "audit",
    chain: Annotated[int | None, typer.Option("--chain", help="Only this chain (partition).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Raw JSON entries.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Print audit entries: who sent what, and who received it under which rule."""
    from bus.composition import Bus
    from bus.services.audit import audit_entries

    bus = Bus(settings)
    count = 0
    for record, entry in audit_entries(bus.engine, bus.principal, topic):
        if chain is not None and record.partition != chain:
            continue
        count += 1
        if as_json:
            print(json.dumps(entry))
            continue
        # Every value of an entry may quote what a sender wrote (a rejected record's producer,
        # type, message id, reason detail): shown as text, never as markup or terminal controls.
        where = f"{entry.get('chain')}/{entry.get('seq')}"
        if entry.get("kind") == "checkpoint":
            covers = entry.get("covers", {})
            out.print(f"{shown(where):<9} {shown(entry.get('signed_at', ''))}  checkpoint seq "
                      f"{shown(covers.get('first_seq'))}..{shown(covers.get('last_seq'))} root "
                      f"{shown(str(covers.get('merkle_root'))[:16])}… signed by {shown(entry.get('router_id'))}",
                      highlight=False)
            continue
        outcome = entry.get("outcome") or "?"
        who = ", ".join(str(r) for r in entry.get("recipients") or []) or "-"
        extra = f"recipients: {who}" if outcome == "routed" else f"reason: {entry.get('reason')}"
        what = entry.get("alert_type") or entry.get("record") or "?"
        out.print(f"{shown(where):<9} {shown(entry.get('routed_at', ''))}  {shown(outcome):<8} {shown(what):<21} "
                  f"{shown(entry.get('producer') or '?'):<20} {shown(entry.get('message_id'))}  {shown(extra)}",
                  highlight=False)
    if count == 0 and not as_json:
        out.print(f"no audit entries on {shown(topic)}", highlight=False)
