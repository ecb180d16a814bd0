"""`bus provision`: topics, SCRAM users and ACLs from the federation directory and policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bus.cli._common import KafkaSettings, err, handle_errors, kafka_options, out
from bus.core.acl_plan import ROUTER_GROUP, ROUTER_TRANSACTIONAL_PREFIX, Change, ChangeKind, Plan
from bus.core.topology import ROUTING_PARTITIONS


def rows(plan: Plan) -> list[tuple[str, str, str]]:
    """(action, subject, detail); grants on one resource share a row: `READ, DESCRIBE topic x`."""
    groups: list[list[Change]] = []
    for c in plan.changes:
        if groups and _acl_key(c) is not None and _acl_key(c) == _acl_key(groups[-1][0]):
            groups[-1].append(c)
        else:
            groups.append([c])
    result = []
    for group in groups:
        first = group[0]
        detail = first.detail
        if first.acl is not None and len(group) > 1:
            detail = first.acl.describe([c.acl.operation for c in group if c.acl is not None])
        result.append((str(first.kind), first.subject, detail))
    return result


def _acl_key(c: Change) -> tuple[object, ...] | None:
    if c.acl is None or c.kind not in (ChangeKind.CREATE_ACL, ChangeKind.DELETE_ACL):
        return None
    a = c.acl
    return (c.kind, a.principal, a.resource_type, a.pattern, a.name, a.permission, a.host)


@kafka_options
@handle_errors
def provision(
    federation: Annotated[
        Path, typer.Option("--federation", envvar="BUS_FEDERATION", help="Signed federation directory.")
    ],
    authority_pub: Annotated[
        Path, typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB",
                           help="Federation authority public key (the directory is verified).")
    ],
    policy: Annotated[Path, typer.Option("--policy", envvar="BUS_POLICY", help="Policy YAML file.")],
    secrets: Annotated[
        Path | None, typer.Option("--secrets", envvar="BUS_SECRETS",
                                  help="YAML `users: {name: password}` (0600); BUS_SECRET_<USER> wins.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing.")] = False,
    generate_missing: Annotated[
        bool, typer.Option("--generate-missing", help="Generate passwords for users without one "
                                                      "into the secrets file (never printed).")
    ] = False,
    rotate_passwords: Annotated[
        bool, typer.Option("--rotate-passwords", help="Re-set every user's SCRAM credential from "
                                                      "the secrets (after you changed them).")
    ] = False,
    partitions: Annotated[
        int, typer.Option("--partitions", min=1, help="Partitions of the alert, acks, audit, changelog, "
                                                      "dead-letter and feed topics. Fixed once the "
                                                      "co-partitioned ones (alerts.*, acks, audit, "
                                                      "router.changelog) exist.")
    ] = ROUTING_PARTITIONS,
    replication: Annotated[
        int | None, typer.Option("--replication", min=1, show_default="min(3, brokers)",
                                 help="Replication factor (min.insync.replicas 2 from 3 on).")
    ] = None,
    directory_state: Annotated[
        Path | None, typer.Option("--directory-state", help="Remember the accepted directory version "
                                                            "here and refuse rollbacks.")
    ] = None,
    router_group: Annotated[
        str, typer.Option("--router-group", help="The router's consumer group (its `--group`).")
    ] = ROUTER_GROUP,
    router_transactional_prefix: Annotated[
        str, typer.Option("--router-transactional-prefix",
                          help="Prefix of the router's transactional ids (its `--transactional-id`).")
    ] = ROUTER_TRANSACTIONAL_PREFIX,
    as_json: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Make the cluster enforce partner isolation: idempotent, a second run changes nothing."""
    from bus.adapters.federation_file import load_verified_directory
    from bus.adapters.policy_file import load_policy
    from bus.adapters.secrets_file import SecretsFile
    from bus.composition import Bus
    from bus.logs import quiet
    from bus.services.provision import bus_names

    quiet()
    directory = load_verified_directory(federation, authority_pub, directory_state)
    loaded_policy = load_policy(policy)
    report = Bus(settings).provision(
        directory, loaded_policy, SecretsFile(secrets),
        partitions=partitions, replication=replication, dry_run=dry_run,
        rotate_passwords=rotate_passwords, generate_missing=generate_missing,
        names=bus_names(router_group, router_transactional_prefix),
    )
    plan = report.plan
    if as_json:
        print(json.dumps({
            "applied": report.applied,
            "changes": [{"action": str(c.kind), "subject": c.subject, "detail": c.detail}
                        for c in plan.changes],
            "warnings": list(plan.warnings),
            "errors": list(plan.errors),
            "generated_passwords_for": report.generated if report.applied else [],
        }, indent=2))
        if plan.errors:
            raise typer.Exit(2)
        return
    for warning in plan.warnings:
        err.print(f"[yellow]note:[/] {warning}", highlight=False)
    for problem in plan.errors:
        err.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    target = f"{settings.describe()} (directory {directory.federation_id} v{directory.version}, " \
             f"policy {loaded_policy.revision}, replication {report.replication.factor})"
    if plan.empty and plan.errors:
        err.print("[bold red]refused:[/] the errors above must be resolved first", highlight=False)
        raise typer.Exit(2)
    if plan.empty:
        out.print(f"[green]no changes[/]: {target} already matches the plan "
                  f"({len(report.desired.topics)} topics, {len(report.desired.users)} users, "
                  f"{len(report.desired.acls)} ACLs)", highlight=False)
        return
    title = "planned changes (dry run, nothing applied)" if dry_run else "applied changes"
    table = Table(title=title, title_justify="left")
    table.add_column("action")
    table.add_column("subject", style="bold")
    table.add_column("detail")
    for action, subject, detail in rows(plan):
        table.add_row(action, subject, detail)
    out.print(table)
    for user, source in sorted(report.password_sources.items()):
        if user in report.generated:
            if report.applied:
                source = f"generated into {secrets}"
            else:
                source = "to be generated" if generate_missing else "MISSING"
        out.print(f"  password for {user}: {source}", highlight=False)
    verb = "would apply" if dry_run else "applied"
    out.print(f"{verb} {len(plan.changes)} change(s) to {target}", highlight=False)
    if plan.errors:
        err.print(f"[bold red]refused:[/] {len(plan.errors)} error(s) above; a real run would apply nothing",
                  highlight=False)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach this module's top-level command(s) to the root app."""
    app.command("provision")(provision)
