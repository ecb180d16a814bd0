"""`bus broker start|status|stop` as an operator uses them (a second, short-lived broker)."""

from __future__ import annotations

from bus.adapters.broker import LocalBroker, base64_uuid, ensure_jars, free_port, port_is_open
from tests.helpers import run_bus


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
        status = run_bus("broker", "status", "--dir", directory, "--port", str(port))
        assert status.returncode == 0 and "running" in status.stdout
        again = run_bus("broker", "start", "--dir", directory, "--port", str(port), check=True)
        assert "already running" in again.stderr + again.stdout
    finally:
        stopped = run_bus("broker", "stop", "--dir", directory, "--port", str(port))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not port_is_open("127.0.0.1", port)
    status = run_bus("broker", "status", "--dir", directory, "--port", str(port))
    assert status.returncode == 1 and "not running" in status.stdout


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(tmp_path):
    """One base64 id in 64 begins with "-"; Kafka's tool must not read it as an option (a CI failure)."""
    node = LocalBroker(tmp_path / "node", port=free_port())
    node.directory.mkdir(parents=True)
    props = node.directory / "server.properties"
    props.write_text(node._server_properties())
    (node.directory / "log4j2.properties").write_text(node._log4j_properties())
    cluster_id = "-" + base64_uuid()[1:]
    node._format(ensure_jars(lambda *_: None), props, cluster_id=cluster_id)
    assert f"cluster.id={cluster_id}" in (node.data_dir / "meta.properties").read_text()
