"""`bus broker start|stop|status`: a local Apache Kafka (KRaft) node from the official jars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.broker import (
    CLUSTER_HEAP,
    DEFAULT_PORT,
    LocalCluster,
    cluster_size,
    forget_cluster,
    port_is_open,
    recorded_broker,
)
from bus.cli._common import err, handle_errors, out
from bus.errors import BusError

app = typer.Typer(no_args_is_help=True)

DirOpt = Annotated[
    Path, typer.Option("--dir", envvar="BUS_BROKER_DIR", help="Where data, logs and the pid file live.")
]
PortOpt = Annotated[int | None, typer.Option(
    "--port", envvar="BUS_BROKER_PORT", show_default=False,
    help="Client listener port (default: the one the broker in --dir was last started on, else 9092).")]
NodesOpt = Annotated[int, typer.Option(
    "--nodes", min=1, help="Nodes; above 1, a local cluster (ports from --port upwards, 2 per node).")]


@app.command()
@handle_errors
def start(
    directory: DirOpt = Path("var/broker"),
    port: PortOpt = None,
    secure: Annotated[bool, typer.Option("--secure", help="SASL/SCRAM-SHA-512 listener + ACL authorizer.")] = False,
    heap: Annotated[str, typer.Option(help="JVM max heap.")] = "512m",
    tls: Annotated[
        bool, typer.Option("--tls", help="Also a TLS listener (port+2) with a CA the project generates.")
    ] = False,
    nodes: NodesOpt = 1,
) -> None:
    """Start a single-node KRaft broker (or, with --nodes, a local cluster) and wait until it answers."""
    if nodes > 1:
        if secure or tls:
            err.print("[red]--secure/--tls are for a single node only[/]")
            raise typer.Exit(2)
        _start_cluster(directory, port, nodes, heap)
        return
    _forget_stopped_cluster(directory, port)
    broker = recorded_broker(directory, port, secure=secure, heap=heap, tls=tls)
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


def _forget_stopped_cluster(directory: Path, port: int | None) -> None:
    """A single node may reuse a cluster's directory once that cluster is down (else stop/status
    would keep addressing the cluster); while any of its nodes runs, refuse."""
    if (nodes := cluster_size(directory)) <= 1:
        return
    cluster = _cluster(directory, nodes, port)
    if cluster.is_running():
        raise BusError(f"a cluster of {nodes} nodes runs from {cluster.directory}; "
                       "stop it first (bus broker stop --dir ...)")
    forget_cluster(directory)


def _cluster(directory: Path, nodes: int, port: int | None, heap: str = CLUSTER_HEAP) -> LocalCluster:
    """The cluster of `directory`: on its recorded ports unless --port is given."""
    recorded = LocalCluster.recorded(directory, nodes, heap=heap) if port is None else None
    return recorded or LocalCluster(directory, nodes, base_port=port or DEFAULT_PORT, heap=heap)


def _start_cluster(directory: Path, port: int | None, nodes: int, heap: str) -> None:
    """A multi-node cluster is for fault tests: plain listeners, replication min(3, nodes).

    Run again on a cluster with dead nodes, it restarts them (on their recorded ports)."""
    running = cluster_size(directory)
    if running > 1 and running != nodes and _cluster(directory, running, port).is_running():
        raise BusError(f"a cluster of {running} nodes runs from {Path(directory).resolve()}; "
                       f"stop it first, or run `bus broker start --nodes {running}` to restart its dead nodes")
    cluster = _cluster(directory, nodes, port, CLUSTER_HEAP if heap == "512m" else heap)
    dead = [n.node_id for n in cluster.nodes if not n.is_running()]
    if not dead:
        out.print(f"cluster already running from {cluster.directory} at [bold]{cluster.bootstrap}[/]")
        return
    fresh = len(dead) == nodes
    started = cluster.start(echo=lambda msg: err.print(msg, highlight=False))
    if fresh:
        out.print(f"[green]cluster of {nodes} running[/] at [bold]{cluster.bootstrap}[/]")
    else:
        for node_id in started:
            n = cluster.node(node_id)
            out.print(f"[green]restarted node {node_id}[/] (it was not running): pid {n.pid()} at {n.bootstrap}")
    for n in cluster.nodes:
        out.print(f"node {n.node_id}: pid {n.pid()} at {n.bootstrap}; log {n.log_file}")


@app.command()
@handle_errors
def stop(directory: DirOpt = Path("var/broker"), port: PortOpt = None) -> None:
    """Stop the local broker or cluster (clean shutdown, SIGKILL after 30 s)."""
    if (nodes := cluster_size(directory)) > 1:
        cluster = _cluster(directory, nodes, port)
        out.print(f"cluster of {nodes} stopped" if cluster.stop() else f"no cluster running from {cluster.directory}")
        return
    broker = recorded_broker(directory, port)
    if broker.stop():
        out.print("broker stopped")
    else:
        out.print(f"no broker running from {broker.directory}")


@app.command()
def status(directory: DirOpt = Path("var/broker"), port: PortOpt = None) -> None:
    """Say whether the local broker (every node of a cluster) runs and where its log is; exit 1 if not."""
    if (nodes := cluster_size(directory)) > 1:
        _cluster_status(_cluster(directory, nodes, port))
        return
    broker = recorded_broker(directory, port)
    pid = broker.pid()
    if pid and port_is_open(broker.host, broker.port):
        out.print(f"[green]running[/] pid {pid} at {broker.bootstrap}; log {broker.log_file}")
        return
    if pid:
        out.print(f"[yellow]starting or unhealthy[/] pid {pid}, port {broker.port} closed; log {broker.log_file}")
    else:
        out.print(f"[red]not running[/] (directory {broker.directory})")
    raise typer.Exit(1)


def _cluster_status(cluster: LocalCluster) -> None:
    healthy = 0
    for n in cluster.nodes:
        pid = n.pid()
        if pid and port_is_open(n.host, n.port):
            healthy += 1
            out.print(f"node {n.node_id}: [green]running[/] pid {pid} at {n.bootstrap}; log {n.log_file}")
        elif pid:
            out.print(f"node {n.node_id}: [yellow]starting or unhealthy[/] pid {pid}, port {n.port} closed")
        else:
            out.print(f"node {n.node_id}: [red]not running[/]")
    if healthy < len(cluster.nodes):
        raise typer.Exit(1)
