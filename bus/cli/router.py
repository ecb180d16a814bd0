"""`bus router run`: the policy router service (any number of them share the work)."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated

import typer

from bus.cli._common import (
    AcceptV10UntilOpt,
    AuthorityPubOpt,
    FederationOpt,
    KafkaSettings,
    handle_errors,
    kafka_options,
    out,
)
from bus.errors import BusError

app = typer.Typer(no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise BusError(f"duration {text!r} must look like 30s, 5m, 12h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@app.command()
@kafka_options
@handle_errors
def run(
    policy: Annotated[Path, typer.Option("--policy", envvar="BUS_POLICY", help="Policy YAML file.")],
    router_key: Annotated[
        Path, typer.Option("--router-key", envvar="BUS_ROUTER_KEY",
                           help="The router's Ed25519 private key: signs receipts and audit checkpoints.")
    ],
    router_id: Annotated[
        str, typer.Option("--router-id", envvar="BUS_ROUTER_ID",
                          help="The router's id in the federation directory (`bus federation add-router`).")
    ] = "EPA-ROUTER-1",
    federation: FederationOpt = None,
    authority_pub: AuthorityPubOpt = None,
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="BUS_KEYS", help="Folder of <MEMBER>.pub (no directory).")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", envvar="BUS_ROUTER_STATE",
                           help="Instance locks and each instance's task stores (and the directory version).")
    ] = Path("var/router"),
    instance: Annotated[
        str | None, typer.Option("--instance", envvar="BUS_ROUTER_INSTANCE",
                                 help="This process's name in the group (default: <host>-<n>, the first free slot).")
    ] = None,
    group: Annotated[str, typer.Option("--group", help="Consumer group the routers share.")] = "bus-router",
    transactional_prefix: Annotated[
        str, typer.Option("--transactional-prefix", help="Transactional id = <prefix>-<instance>.")
    ] = "bus-router",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per transaction.")] = 500,
    max_age: Annotated[str, typer.Option("--max-age", help="Reject alerts created longer ago.")] = "7d",
    max_skew: Annotated[str, typer.Option("--max-skew", help="Tolerated clock skew into the future.")] = "5m",
    replay_window: Annotated[str, typer.Option("--replay-window", help="How long message ids are remembered.")] = "8d",
    reload_interval: Annotated[float, typer.Option("--reload-interval", help="Seconds between file checks.")] = 5.0,
    commit_timeout: Annotated[
        float, typer.Option("--commit-timeout", min=1.0,
                            help="Seconds a transaction may take before the router starts over from what Kafka "
                                 "committed (a broker died under it).")
    ] = 30.0,
    transaction_timeout: Annotated[
        float, typer.Option("--transaction-timeout", min=1.0,
                            help="Seconds a dead router's open transaction may hold back readers of its outputs.")
    ] = 20.0,
    session_timeout: Annotated[
        float, typer.Option("--session-timeout", min=6.0,
                            help="Seconds before the tasks of a router that stopped move to the others.")
    ] = 15.0,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=1, help="Sign an audit checkpoint after this many entries...")
    ] = 1000,
    checkpoint_interval: Annotated[
        float, typer.Option("--checkpoint-interval", min=0.1, help="... or this many seconds.")
    ] = 60.0,
    partitions: Annotated[
        int, typer.Option("--partitions", min=1, help="Partitions of the co-partitioned topics it creates.")
    ] = 6,
    replication: Annotated[
        int | None, typer.Option("--replication", min=1, help="Replication of topics it creates "
                                                            "(default: min(3, brokers)).")
    ] = None,
    accept_v1_0_until: AcceptV10UntilOpt = None,
    health_port: Annotated[
        int | None, typer.Option("--health-port", envvar="BUS_ROUTER_HEALTH_PORT",
                                 help="Serve /healthz, /readyz and /metrics on this port (0: any free port).")
    ] = None,
    health_host: Annotated[str, typer.Option("--health-host", help="Address of the health server.")] = "127.0.0.1",
    max_idle: Annotated[
        float | None, typer.Option("--exit-when-idle", help="Exit after this many idle seconds (one-shot runs).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="BUS_LOG_LEVEL")] = "INFO",
    *,
    settings: KafkaSettings,
) -> None:
    """Verify, filter and forward alerts to partner feeds; receipts to producers; audit every decision.

    Start as many as the load needs, with the same flags: they share the routing tasks
    (one per partition). SIGTERM/SIGINT finish the current transaction, checkpoint the
    audit chains and stop; SIGHUP reloads the federation directory and policy (they are
    also reloaded when the files change).
    """
    from bus import logs
    from bus.adapters.keystore import load_signing_key
    from bus.composition import Bus
    from bus.core.signing import V1_0_ACCEPTED_UNTIL
    from bus.core.trust import FreshnessPolicy
    from bus.services.router import FileSources, RouterIdentity, RouterOptions

    logs.configure(level=log_level)
    freshness = FreshnessPolicy(max_future_skew=parse_duration(max_skew), max_age=parse_duration(max_age))
    window = V1_0_ACCEPTED_UNTIL if accept_v1_0_until is None else (
        accept_v1_0_until if accept_v1_0_until.tzinfo else accept_v1_0_until.replace(tzinfo=UTC))
    options = RouterOptions(
        state_dir=state_dir, instance=instance, group_id=group, transactional_prefix=transactional_prefix,
        batch_size=batch_size, freshness=freshness, replay_window=parse_duration(replay_window),
        reload_interval=reload_interval, partitions=partitions, replication=replication,
        commit_timeout=commit_timeout, transaction_timeout_ms=int(transaction_timeout * 1000),
        session_timeout_ms=int(session_timeout * 1000), checkpoint_every=checkpoint_every,
        checkpoint_interval=checkpoint_interval, accept_v1_0_until=window, health_host=health_host,
        health_port=health_port)
    identity = RouterIdentity(router_id, load_signing_key(router_key, router_id))
    sources = FileSources(policy, federation=federation, authority_pub=authority_pub, keys=keys, state_dir=state_dir)
    router = Bus(settings).router(sources.load, identity, options=options, changed=sources.changed)
    router.install_signal_handlers()
    stats = router.run(max_idle=max_idle)
    out.print(f"routed {stats.routed}, rejected {stats.rejected}, delivered {stats.delivered} feed records")
