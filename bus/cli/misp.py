"""`bus misp`: alerts as MISP events in a feed folder that a MISP instance subscribes to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bus.cli._alert_source import AlertSource, alert_source_options, read_alerts
from bus.cli._common import KafkaSettings, err, handle_errors, kafka_options

app = typer.Typer(no_args_is_help=True)


@app.command()
@kafka_options
@handle_errors
@alert_source_options
def export(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="The MISP feed folder (created if missing).")],
    *,
    src: AlertSource,
    settings: KafkaSettings,
) -> None:
    """Write each alert as a MISP event into a feed folder and update its manifest.

    Events already in the folder stay (an event with the same message id is
    replaced), so repeated exports grow one feed. Subscribe MISP to the folder
    as a feed of type "MISP Feed" (see docs/interop.md).
    """
    from bus.adapters.misp_feed import country_galaxy, write_feed
    from bus.interop.misp import misp_event

    alerts = read_alerts(src, settings)
    countries = country_galaxy()
    result = write_feed((misp_event(a, countries=countries) for a in alerts), out_dir)
    err.print(f"wrote {len(result.written)} event(s) to {escape(str(out_dir))}; the manifest lists {result.listed}",
              highlight=False, soft_wrap=True)
