"""`bus policy` commands: validate a policy, explain a decision, run an operator's test cases.

These run offline (no Kafka): operators change a policy, run `bus policy test` on
the cases they keep next to it, and only then let the router reload it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from bus.cli._common import err, fail, handle_errors, out
from bus.core.models import BaseAlert
from bus.core.policy import Decision, Policy, check_case

app = typer.Typer(no_args_is_help=True)

PolicyOpt = Annotated[
    Path,
    typer.Option("--policy", "-p", envvar="BUS_POLICY", help="Policy YAML file (policies/*.yaml)."),
]


def _load(path: Path) -> Policy:
    from bus.adapters.policy_file import load_policy

    return load_policy(path)


@app.command()
@handle_errors
def validate(policy: PolicyOpt) -> None:
    """Check a policy file (structure, references, EMPACT codes); exit 2 if it is invalid."""
    p = _load(policy)
    out.print(
        f"[green]valid[/]: {policy} version {p.revision}: {len(p.partners)} partners, "
        f"{len(p.rules)} rules",
        highlight=False, soft_wrap=True,
    )


def _table(policy: Policy, alert: BaseAlert, decision: Decision) -> Table:
    h = alert.header
    named = ", ".join(h.release_to) or "-"
    codes = ", ".join(h.handling_codes) or "-"
    table = Table(
        title=f"{h.alert_type.value} {h.message_id} from {h.producer}\n"
        f"TLP:{h.tlp.value}  handling {codes}  release_to {named}  "
        f"policy {decision.policy_version}",
        title_justify="left",
    )
    table.add_column("partner", overflow="fold")
    table.add_column("kind", overflow="fold")
    table.add_column("delivered")
    table.add_column("rule / restriction", overflow="fold")
    table.add_column("reason", ratio=2)
    kinds = {p.id: p.kind.value for p in policy.partners}
    for pid, d in decision.per_partner.items():
        table.add_row(
            pid,
            kinds[pid],
            "[green]yes[/]" if d.delivered else "[red]no[/]",
            d.rule_id if d.delivered else d.code.value,
            Text(d.detail),  # rule descriptions are operator text, not rich markup
        )
    return table


@app.command()
@handle_errors
def explain(
    alert_file: Annotated[
        Path, typer.Argument(metavar="ALERT.json", help="Alert JSON (object, array, or .jsonl).")
    ],
    policy: PolicyOpt,
    producer: Annotated[
        str | None,
        typer.Option("--producer", help="Producer member id, if the alert does not say."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """For every partner: delivered or not, and which rule or restriction decided it."""
    from bus.adapters.alert_files import load_alerts, read_items
    from bus.core.policy import evaluate
    from bus.errors import AlertFileError

    p = _load(policy)
    try:
        alerts = load_alerts(alert_file, alert_type=None, producer=producer)
    except AlertFileError as exc:
        if producer is None and "header.producer: required" in str(exc):
            fail(f"{exc}\nhint: the producer decides producer-excluded; pass --producer MEMBER")
        raise
    decisions = [(a, evaluate(p, a)) for a in alerts]
    if as_json:
        docs = [
            {"message_id": str(a.header.message_id), "producer": a.header.producer,
             "alert_type": a.header.alert_type.value, **d.to_dict()}
            for a, d in decisions
        ]
        single = len(docs) == 1 and read_items(alert_file)[0].where == ""
        print(json.dumps(docs[0] if single else docs, indent=2))
        return
    for a, d in decisions:
        out.print(_table(p, a, d))
        out.print(f"recipients: {', '.join(d.recipients) or '(none)'}", highlight=False, soft_wrap=True)


@app.command("test")
@handle_errors
def test_cases(
    cases_file: Annotated[
        Path,
        typer.Argument(metavar="CASES.yaml", help="Policy test cases (policies/*.cases.yaml)."),
    ],
    policy: PolicyOpt,
) -> None:
    """Run policy test cases: each alert must reach exactly the expected partners, else exit 1."""
    from bus.adapters.policy_file import load_cases

    p = _load(policy)
    cases = load_cases(cases_file, policy=p)
    failed = 0
    for loaded in cases:
        c = loaded.case
        result = check_case(p, c.name, loaded.alert, c.expect, c.expect_reasons)
        if result.passed:
            out.print(f"[green]PASS[/] {c.name}", highlight=False, soft_wrap=True)
            continue
        failed += 1
        where = f" ({cases_file}, line {loaded.line})" if loaded.line else ""
        out.print(f"[red]FAIL[/] {c.name}{where}", highlight=False, soft_wrap=True)
        out.print(f"     expected: {', '.join(result.expected) or '(none)'}", highlight=False, soft_wrap=True)
        out.print(f"     actual:   {', '.join(result.actual) or '(none)'}", highlight=False, soft_wrap=True)
        per = result.decision.per_partner
        for pid in result.missing:
            out.print(f"     - {pid} not delivered: {per[pid].reason} ({per[pid].detail})",
                      highlight=False, soft_wrap=True)
        for pid in result.unexpected:
            out.print(f"     + {pid} delivered: {per[pid].reason} ({per[pid].detail})",
                      highlight=False, soft_wrap=True)
        for pid, (want, got) in result.wrong_reasons.items():
            out.print(f"     ! {pid}: expected reason {want}, got {got}", highlight=False, soft_wrap=True)
    summary = f"{len(cases) - failed} passed, {failed} failed (policy {p.revision})"
    if failed:
        err.print(f"[red]{summary}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"[green]{summary}[/]", highlight=False, soft_wrap=True)
