"""`bus broker start|status|stop` as an operator uses them (a second, short-lived broker)."""

from __future__ import annotations

import os
import random
import signal
import socket

from bus.adapters.broker import LocalBroker, LocalCluster, base64_uuid, ensure_jars, free_port, port_is_open
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.topology import TopicSpec
from tests.helpers import run_bus, wait_for


def test_broker_lifecycle_from_the_command_line(tmp_path):
    port = free_port()
    directory = str(tmp_path / "broker")
    # Left behind by a cluster that died without `bus broker stop`: must not hijack stop/status.
    (tmp_path / "broker").mkdir()
    (tmp_path / "broker" / "cluster.nodes").write_text("3\n")
    try:
        started = run_bus("broker", "start", "--dir", directory, "--port", str(port), "--tls", "--heap", "384m",
                          check=True)
        assert f"127.0.0.1:{port}" in started.stdout
        assert "server.log" in started.stdout  # says where its log is
        assert "TLS listener" in started.stdout
        assert port_is_open("127.0.0.1", port) and port_is_open("127.0.0.1", port + 2)
        # No --port: status finds the port the broker was started on.
        status = run_bus("broker", "status", "--dir", directory)
        assert status.returncode == 0 and "running pid" in status.stdout, status.stdout
        assert f"127.0.0.1:{port}" in status.stdout
        again = run_bus("broker", "start", "--dir", directory, check=True)
        assert "already running" in again.stderr + again.stdout and f"127.0.0.1:{port}" in again.stderr + again.stdout
    finally:
        stopped = run_bus("broker", "stop", "--dir", directory)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not port_is_open("127.0.0.1", port)
    status = run_bus("broker", "status", "--dir", directory)
    assert status.returncode == 1 and "not running" in status.stdout


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(tmp_path):
    """One base64 id in 64 begins with "-"; Kafka's tool must not read it as an option (a CI failure)."""
    node = LocalBroker(tmp_path / "node", port=free_port())
    props = node.write_config()
    cluster_id = "-" + base64_uuid()[1:]
    node.format_storage(ensure_jars(lambda *_: None), props, cluster_id=cluster_id)
    assert f"cluster.id={cluster_id}" in (node.data_dir / "meta.properties").read_text()


def free_port_block(count: int) -> int:
    """A base port with `count` consecutive free ports (the CLI lays a cluster out from --port)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        try:
            socks = []
            for p in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError(f"no {count} consecutive free ports")


def test_starting_a_cluster_again_restarts_its_dead_node(tmp_path):
    nodes = 3
    base = free_port_block(2 * nodes)
    directory = str(tmp_path / "cluster")
    cluster = LocalCluster(tmp_path / "cluster", nodes, base_port=base)
    try:
        run_bus("broker", "start", "--nodes", str(nodes), "--dir", directory, "--port", str(base), check=True)
        victim = cluster.node(2)
        pid = victim.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: victim.pid() is None, timeout=30, what="node 2 to die")
        down = run_bus("broker", "status", "--dir", directory)
        assert down.returncode == 1 and "node 2: not running" in down.stdout, down.stdout

        # Neither --port nor anything else repeated: the ports come from what start recorded.
        again = run_bus("broker", "start", "--nodes", str(nodes), "--dir", directory, check=True)
        assert "already running" not in again.stdout
        assert f"restarted node 2 (it was not running): pid {victim.pid()} at 127.0.0.1:{base + 2}" in again.stdout
        assert "restarted node 1" not in again.stdout and "restarted node 3" not in again.stdout
        status = run_bus("broker", "status", "--dir", directory)
        assert status.returncode == 0 and status.stdout.count(": running pid") == nodes, status.stdout

        # It serves with all three: a topic replicated on every node (refused with a node fenced),
        # and every replica in sync: with min.insync.replicas 3, a write is acknowledged only then.
        bus = Bus(KafkaSettings(bootstrap=cluster.bootstrap))
        bus.ensure_topics([TopicSpec("restart-check", 3, nodes, (("min.insync.replicas", str(nodes)),))])
        producer = bus.engine.producer()
        try:
            deliveries = [producer.send("restart-check", b"all in sync", partition=p) for p in range(3)]
            assert {d.result(60).partition for d in deliveries} == {0, 1, 2}
        finally:
            producer.close()
        assert "already running" in run_bus("broker", "start", "--nodes", "3", "--dir", directory).stdout
    finally:
        stopped = run_bus("broker", "stop", "--dir", directory)
        cluster.stop()  # whatever the CLI left behind
    assert "cluster of 3 stopped" in stopped.stdout
    assert not any(port_is_open("127.0.0.1", base + 2 * i) for i in range(nodes))
