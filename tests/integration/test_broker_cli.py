"""`bus broker start|status|stop` as an operator uses them (a second, short-lived broker)."""

from __future__ import annotations

from bus.adapters.broker import free_port, port_is_open
from tests.helpers import run_bus


def test_broker_lifecycle_from_the_command_line(tmp_path):
    port = free_port()
    directory = str(tmp_path / "broker")
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
