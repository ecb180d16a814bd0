"""`bus broker start|stop|status`: a local Apache Kafka (KRaft) node from the official jars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.broker import LocalBroker, port_is_open
from bus.cli._common import err, handle_errors, out

app = typer.Typer(no_args_is_help=True)

DirOpt = Annotated[
    Path, typer.Option("--dir", envvar="BUS_BROKER_DIR", help="Where data, logs and the pid file live.")
]
PortOpt = Annotated[int, typer.Option("--port", envvar="BUS_BROKER_PORT", help="Client listener port.")]


@app.command()
@handle_errors
def start(
    directory: DirOpt = Path("var/broker"),
    port: PortOpt = 9092,
    secure: Annotated[bool, typer.Option("--secure", help="SASL/SCRAM-SHA-512 listener + ACL authorizer.")] = False,
    heap: Annotated[str, typer.Option(help="JVM max heap.")] = "512m",
    tls: Annotated[
        bool, typer.Option("--tls", help="Also a TLS listener (port+2) with a CA the project generates.")
    ] = False,
) -> None:
    """Start a single-node KRaft broker and wait until it answers."""
    broker = LocalBroker(directory, port=port, secure=secure, heap=heap, tls=tls)
    broker.start(echo=lambda msg: err.print(msg, highlight=False))
    out.print(f"[green]broker running[/] pid {broker.pid()} at [bold]{broker.bootstrap}[/]"
              f"{' (SASL_PLAINTEXT, SCRAM-SHA-512, ACLs on)' if secure else ''}")
    out.print(f"log: {broker.log_file}")
    if secure:
        out.print(f"admin user 'admin', password in {broker.admin_password_file} (0600)")
    if tls:
        proto = "SASL_SSL" if secure else "SSL"
        out.print(f"TLS listener at [bold]{broker.tls_bootstrap}[/] ({proto}); clients trust {broker.ca_file} "
                  "(--ssl-cafile / BUS_SSL_CAFILE)")


@app.command()
@handle_errors
def stop(directory: DirOpt = Path("var/broker"), port: PortOpt = 9092) -> None:
    """Stop the local broker (clean shutdown, SIGKILL after 30 s)."""
    broker = LocalBroker(directory, port=port)
    if broker.stop():
        out.print("broker stopped")
    else:
        out.print(f"no broker running from {broker.directory}")


@app.command()
def status(directory: DirOpt = Path("var/broker"), port: PortOpt = 9092) -> None:
    """Say whether the local broker runs and where its log is; exit 1 if not."""
    broker = LocalBroker(directory, port=port)
    pid = broker.pid()
    if pid and port_is_open(broker.host, port):
        out.print(f"[green]running[/] pid {pid} at {broker.bootstrap}; log {broker.log_file}")
        return
    if pid:
        out.print(f"[yellow]starting or unhealthy[/] pid {pid}, port {port} closed; log {broker.log_file}")
    else:
        out.print(f"[red]not running[/] (directory {broker.directory})")
    raise typer.Exit(1)
