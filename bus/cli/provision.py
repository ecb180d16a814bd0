"""`bus provision`: topics, SCRAM users and ACLs from the federation directory and policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bus.cli._common import KafkaSettings, err, handle_errors, kafka_options, out
from bus.core.acl_plan import ROUTER_GROUP, ROUTER_TRANSACTIONAL_PREFIX, Change, ChangeKind, Plan
from bus.core.topology import ROUTING_PARTITIONS
from bus.errors import InvalidInput

if TYPE_CHECKING:
    from bus.adapters.secrets_file import SecretsFile


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
    policy: Annotated[
        Path | None, typer.Option("--policy", envvar="BUS_POLICY", show_default=False,
                                  help="Policy YAML file (required, but with --kit).")
    ] = None,
    secrets: Annotated[
        Path | None, typer.Option("--secrets", envvar="BUS_SECRETS",
                                  help="YAML `users: {name: password}` (0600); BUS_SECRET_<USER> wins.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing.")] = False,
    generate_missing: Annotated[
        bool, typer.Option("--generate-missing/--no-generate-missing",
                           help="Give new users without a password a generated one, written to --secrets "
                                "(0600, never printed); existing users keep theirs. --no-generate-missing: "
                                "a missing password is an error (passwords come from a vault).")
    ] = True,
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
    kit: Annotated[
        str | None, typer.Option("--kit", metavar="MEMBER", rich_help_panel="Member kit",
                                 help="Write MEMBER's kit into --out instead of provisioning (or a service's: "
                                      "svc-router, svc-auditor): its Kafka "
                                      "connection with user and password, CA, signed directory and authority "
                                      "key, as a config file and an env file, every file 0600. Changes nothing "
                                      "on the cluster; checks that the member is provisioned and its password "
                                      "logs in.")
    ] = None,
    kit_out: Annotated[
        Path | None, typer.Option("--out", rich_help_panel="Member kit", help="Folder to write the kit in.")
    ] = None,
    kit_bootstrap: Annotated[
        str | None, typer.Option("--kit-bootstrap", rich_help_panel="Member kit", show_default="--bootstrap",
                                 help="The address the member connects to.")
    ] = None,
    kit_security_protocol: Annotated[
        str | None, typer.Option("--kit-security-protocol", rich_help_panel="Member kit",
                                 show_default="--security-protocol", help="SASL_SSL or SASL_PLAINTEXT.")
    ] = None,
    kit_ca: Annotated[
        Path | None, typer.Option("--kit-ca", rich_help_panel="Member kit", show_default="--ssl-cafile",
                                  help="CA of the brokers' certificates, for a SASL_SSL kit.")
    ] = None,
    installed_at: Annotated[
        Path | None, typer.Option("--installed-at", rich_help_panel="Member kit", show_default="--out",
                                  help="Where the member will keep the kit (the env file's absolute paths).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", rich_help_panel="Member kit", help="Replace a kit already in --out.")
    ] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Make the cluster enforce partner isolation: idempotent, a second run changes nothing.

    With --kit MEMBER --out DIR: write that member's kit instead (once it is provisioned).
    """
    from bus.adapters.federation_file import load_verified_directory
    from bus.adapters.policy_file import load_policy
    from bus.adapters.secrets_file import SecretsFile
    from bus.composition import Bus
    from bus.logs import quiet
    from bus.services.provision import bus_names

    quiet()
    if kit is not None:
        if dry_run or rotate_passwords:
            raise InvalidInput("--kit writes a member kit and changes nothing on the cluster; run `bus provision` "
                               "without --kit for --dry-run or --rotate-passwords")
        if kit_out is None:
            raise InvalidInput("--kit needs --out DIR (the folder to write the kit in)", [("--out", "missing")])
        write_member_kit(settings, kit, kit_out, federation, authority_pub, SecretsFile(secrets),
                         directory_state=directory_state, bootstrap=kit_bootstrap,
                         security_protocol=kit_security_protocol, ca_file=kit_ca, installed_at=installed_at,
                         force=force)
        return
    if policy is None:
        raise InvalidInput("--policy is required (the routing policy the grants follow)", [("--policy", "missing")])
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
                source = f"to be generated into {secrets}" if generate_missing and secrets else "MISSING"
        out.print(f"  password for {user}: {source}", highlight=False)
    verb = "would apply" if dry_run else "applied"
    out.print(f"{verb} {len(plan.changes)} change(s) to {target}", highlight=False)
    if plan.errors:
        err.print(f"[bold red]refused:[/] {len(plan.errors)} error(s) above; a real run would apply nothing",
                  highlight=False)
        raise typer.Exit(2)


def write_member_kit(settings: KafkaSettings, member: str, out_dir: Path, federation: Path, authority_pub: Path,
                     secrets: SecretsFile, *, directory_state: Path | None, bootstrap: str | None,
                     security_protocol: str | None, ca_file: Path | None, installed_at: Path | None,
                     force: bool) -> None:
    """`--kit`: check the member's credentials against the cluster, write its kit, say what is in it."""
    from bus.adapters.federation_file import load_verified_directory
    from bus.adapters.member_kit import AUTHORITY, CA, CONFIG, DIRECTORY, ENV, README, MemberKit, write_kit
    from bus.composition import Bus
    from bus.services.member_kit import SERVICE_USERS

    directory = load_verified_directory(federation, authority_pub, directory_state)
    connection = Bus(settings).member_kit_connection(directory, member, secrets, bootstrap=bootstrap,
                                                     security_protocol=security_protocol, ca_file=ca_file)
    kit = MemberKit(member, connection, directory, federation, authority_pub, service=member in SERVICE_USERS)
    written = write_kit(kit, out_dir,
                        installed_at=installed_at, overwrite=force)
    what = {
        CONFIG: f"--config: {connection.bootstrap} ({connection.security_protocol}) as {connection.user}, "
                "password inside",
        ENV: "the same as BUS_* variables, with the files' paths (EnvironmentFile=, or set -a; . bus.env)",
        DIRECTORY: f"federation directory {directory.federation_id} v{directory.version}, verified",
        AUTHORITY: "the federation authority's public key",
        CA: "CA of the brokers' certificates",
        README: "what these files are and how to use them (no secret in it)",
    }
    out.print(escape(f"{'service' if kit.service else 'member'} kit for {member} in {out_dir} (every file 0600):"),
              highlight=False)
    for path in written:
        out.print(f"  {path.name:<16} {escape(what.get(path.name, ''))}", highlight=False)
    out.print(f"checked: {connection.user} is provisioned and its password logs in at {escape(settings.bootstrap)}",
              highlight=False)
    if not kit.service:
        out.print(f"hand the folder to {member} over a channel you trust; its private keys are not in it",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Attach this module's top-level command(s) to the root app."""
    app.command("provision")(provision)
