"""What `bus broker start` writes before the JVM runs: secrets owner-only, listeners recorded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bus.adapters.broker import Listeners, LocalBroker, LocalCluster, recorded_broker
from bus.adapters.keystore import generate_keypair
from bus.adapters.private_file import write_private
from bus.adapters.secrets_file import SecretsFile


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    """Umask 0: a file made without an explicit mode would be 0666, so the modes below are ours."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_every_file_holding_the_admin_password_is_owner_only(tmp_path, permissive_umask):
    broker = LocalBroker(tmp_path / "broker", port=19092, controller_port=19093, secure=True, tls=True)
    broker.directory.mkdir()
    # Left by an older version, world-readable: rewriting it must not keep that mode.
    (broker.directory / "server.properties").write_text("old\n")
    os.chmod(broker.directory / "server.properties", 0o644)

    props = broker.write_config()

    password = broker.admin_password()
    assert password in props.read_text()  # the JAAS line: this file is a secret too
    holding_secrets = [props, broker.admin_password_file, broker.tls_dir / "server.key",
                       broker.tls_dir / "server.keystore.pem"]
    assert {p.name: oct(mode(p)) for p in holding_secrets} == {p.name: "0o600" for p in holding_secrets}
    for path in broker.directory.rglob("*"):
        if path.is_file() and password in path.read_text(errors="replace"):
            assert mode(path) == 0o600, f"{path} holds the admin password with mode {mode(path):o}"
    assert not [p for p in broker.directory.iterdir() if p.name.endswith(".tmp")]


def test_a_new_broker_directory_is_owner_only(tmp_path):
    broker = LocalBroker(tmp_path / "fresh", port=19092, secure=True)
    broker.admin_password()
    assert mode(broker.directory) == 0o700


def test_private_files_replace_any_older_mode_and_never_leave_temporaries(tmp_path, permissive_umask):
    target = tmp_path / "secret.txt"
    target.write_text("public\n")
    os.chmod(target, 0o666)
    write_private(target, "s3cret\n")
    assert target.read_text() == "s3cret\n" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.txt"]


def test_keys_and_scram_secrets_are_owner_only_under_any_umask(tmp_path, permissive_umask):
    key, _, _ = generate_keypair("NL-CUSTOMS", tmp_path / "keys")
    assert mode(key) == 0o600
    SecretsFile(tmp_path / "secrets.yaml", env={}).generate(["nl-customs"])
    assert mode(tmp_path / "secrets.yaml") == 0o600


def test_the_listeners_a_broker_was_started_on_are_found_again(tmp_path):
    LocalBroker(tmp_path / "b", port=29092, controller_port=29111, tls=True).write_config()
    assert Listeners.load(tmp_path / "b") == Listeners("127.0.0.1", 29092, 29111, 29094)

    again = recorded_broker(tmp_path / "b")
    assert (again.port, again.controller_port, again.tls_port) == (29092, 29111, 29094)
    assert recorded_broker(tmp_path / "b", 30000).port == 30000  # an explicit --port wins
    assert recorded_broker(tmp_path / "never-started").port == 9092
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "listeners.json").write_text('{"port": ')
    assert recorded_broker(tmp_path / "torn").port == 9092


def test_a_cluster_is_found_on_the_ports_its_nodes_recorded(tmp_path):
    cluster = LocalCluster(tmp_path / "c", 3, ports=[31000, 31005, 31010], controller_ports=[31001, 31006, 31011])
    for node in cluster.nodes[:2]:
        node.write_config()
    assert LocalCluster.recorded(tmp_path / "c", 3) is None  # node 3 never recorded anything
    cluster.nodes[2].write_config()
    found = LocalCluster.recorded(tmp_path / "c", 3)
    assert found is not None
    assert [n.port for n in found.nodes] == [31000, 31005, 31010]
    assert found.nodes[2].voters == cluster.nodes[2].voters
