"""`bus router run`: the policy router service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from bus.cli._common import KafkaSettings, handle_errors, kafka_options, out
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
    federation: Annotated[
        Path | None, typer.Option("--federation", envvar="BUS_FEDERATION", help="Signed federation directory.")
    ] = None,
    authority_pub: Annotated[
        Path | None, typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB", help="Authority public key.")
    ] = None,
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="BUS_KEYS", help="Folder of <MEMBER>.pub (no directory).")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", envvar="BUS_ROUTER_STATE", help="Remembers the directory version.")
    ] = Path("var/router"),
    group: Annotated[str, typer.Option("--group", help="Consumer group.")] = "bus-router",
    transactional_id: Annotated[
        str, typer.Option("--transactional-id", help="Kafka transactional id.")
    ] = "bus-router-1",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per transaction.")] = 500,
    max_age: Annotated[str, typer.Option("--max-age", help="Reject alerts created longer ago.")] = "7d",
    max_skew: Annotated[str, typer.Option("--max-skew", help="Tolerated clock skew into the future.")] = "5m",
    replay_window: Annotated[str, typer.Option("--replay-window", help="How long message ids are remembered.")] = "8d",
    reload_interval: Annotated[float, typer.Option("--reload-interval", help="Seconds between file checks.")] = 5.0,
    commit_timeout: Annotated[
        float, typer.Option("--commit-timeout", min=1.0,
                            help="Seconds a transaction may take to commit before the router starts over "
                                 "from what Kafka committed (a broker died under it).")
    ] = 30.0,
    accept_v1_0_until: Annotated[
        datetime | None, typer.Option("--accept-v1-0-until", envvar="BUS_ACCEPT_V1_0_UNTIL",
                                      formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                                      help="End of the wire format 1.0 transition window (UTC; "
                                           "default 2027-06-01): 1.0 records created later are rejected.")
    ] = None,
    max_idle: Annotated[
        float | None, typer.Option("--exit-when-idle", help="Exit after this many idle seconds (one-shot runs).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="BUS_LOG_LEVEL")] = "INFO",
    *,
    settings: KafkaSettings,
) -> None:
    """Verify, filter and forward alerts to partner feeds; audit every decision.

    SIGTERM/SIGINT finish the current transaction and stop; SIGHUP reloads the
    federation directory and policy (they are also reloaded when the files change).
    """
    from bus import logs
    from bus.core.trust import FreshnessPolicy
    from bus.services.router import Router, RouterOptions
    from bus.services.router_sources import FileSources

    logs.configure(level=log_level)
    replay = parse_duration(replay_window)
    freshness = FreshnessPolicy(max_future_skew=parse_duration(max_skew), max_age=parse_duration(max_age))
    if replay < freshness.max_age + freshness.max_future_skew:
        raise BusError("--replay-window must cover --max-age plus --max-skew, or old replays slip through")
    from bus.core.signing import V1_0_ACCEPTED_UNTIL

    window = V1_0_ACCEPTED_UNTIL if accept_v1_0_until is None else (
        accept_v1_0_until if accept_v1_0_until.tzinfo else accept_v1_0_until.replace(tzinfo=UTC))
    sources = FileSources(policy, federation=federation, authority_pub=authority_pub, keys=keys,
                          state_dir=state_dir)
    router = Router(
        settings, sources.load, freshness=freshness, changed=sources.changed,
        options=RouterOptions(group_id=group, transactional_id=transactional_id, batch_size=batch_size,
                              replay_window=replay, reload_interval=reload_interval,
                              commit_timeout=commit_timeout, accept_v1_0_until=window),
    )
    router.install_signal_handlers()
    stats = router.run(max_idle=max_idle)
    out.print(f"routed {stats.routed}, rejected {stats.rejected}, delivered {stats.delivered} feed records")
