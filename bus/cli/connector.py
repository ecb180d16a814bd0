"""`bus connector` commands: run any connector, list them, and their small tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus.cli._common import err, fail, handle_errors, out

app = typer.Typer(no_args_is_help=True)


@app.command("list")
@handle_errors
def list_connectors() -> None:
    """Connectors this installation can run."""
    from connectors.sdk.registry import available, summary

    for name in sorted(available()):
        out.print(f"{name:<16} {summary(name)}", highlight=False, markup=False, soft_wrap=True)


@app.command()
@handle_errors
def run(
    name: Annotated[str, typer.Argument(help="Connector name (see `bus connector list`).")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="BUS_CONNECTOR_CONFIG",
                     help="Connector YAML config (see deploy/connectors/ and docs/operators.md)."),
    ] = None,
) -> None:
    """Run a connector until SIGTERM/SIGINT; health, readiness and metrics on its health port.

    Settings come from the YAML file, overridden by BUS_CONNECTOR_* variables
    (nested with `__`) and, for the `kafka:` section, by BUS_BOOTSTRAP,
    BUS_SASL_USERNAME, BUS_SASL_PASSWORD, ... Every invalid field is reported at once.
    """
    from connectors.sdk.config import load_config
    from connectors.sdk.registry import load_connector
    from connectors.sdk.runtime import Runtime

    connector_class = load_connector(name)
    if config is None:
        err.print("no --config given: reading settings from the environment only", highlight=False)
    settings = load_config(connector_class.settings_class, config)
    try:
        runtime = Runtime(connector_class, settings)
    except OSError as exc:
        fail(f"{name}: cannot start: {exc}")
    runtime.run()


@app.command()
@handle_errors
def openapi(
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the committed document is stale.")] = False,
) -> None:
    """The http-ingest OpenAPI 3.1 document, as its FastAPI application generates it.

    --check compares it with the committed copy, so that every change to the API is reviewed.
    """
    from connectors.http_ingest.app import COMMITTED, render_openapi

    text = render_openapi()
    if check:
        if not COMMITTED.exists() or COMMITTED.read_text() != text:
            fail(f"{COMMITTED} is stale; run `bus connector openapi --out {COMMITTED}`", code=1)
        out.print(f"{COMMITTED} is up to date", highlight=False)
        return
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text)
        err.print(f"wrote {out_file}", highlight=False)


@app.command()
def token(
    system: Annotated[str, typer.Option("--system", help="System name in the http-ingest config.")],
) -> None:
    """A new random bearer token for an agency system, and the config entry with its SHA-256.

    Give the token to the system's operators over a secure channel; only the hash
    goes into the connector config.
    """
    from connectors.http_ingest.auth import hash_token, new_token

    secret = new_token()
    typer.echo(f"token (give to {system}, shown once): {secret}")
    typer.echo("config entry (ingest.systems):")
    typer.echo(f"  - name: {system}\n    token_sha256: {hash_token(secret)}\n"
               "    alert_types: [suspicious-container]")
