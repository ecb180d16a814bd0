"""Session-wide fixtures: one real Kafka broker per test session.

Where it comes from (first match wins):
- `BUS_TEST_BOOTSTRAP=host:port`: an existing cluster;
- `BUS_TEST_KAFKA=testcontainers`: testcontainers' Kafka module (needs Docker);
- otherwise `bus.adapters.broker.LocalBroker` on a free port in a temp dir.

The suite does not obey the caller's `BUS_*` settings: an operator's shell exports
`BUS_BOOTSTRAP`, `BUS_SASL_USERNAME`... for real work, and every settings object the
tests build (and every `bus` subprocess they run) would pick them up. They are removed
from this process's environment before anything else is imported; `BUS_TEST_*` are the
suite's own. A test that wants a `BUS_*` variable sets it itself (monkeypatch.setenv, or
`env=` of `tests.helpers.run_bus`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest

TEST_PREFIX = "BUS_TEST_"
KEPT = frozenset({"BUS_KAFKA_CACHE"})
"""Where this machine caches the Kafka jars: a location, not a setting under test."""
FORWARDED = {"BUS_TEST_KAFKA_ENGINE": "BUS_KAFKA_ENGINE"}
"""Settings the suite may be asked to run with, by their `BUS_TEST_*` name."""


def scrub_bus_environment(environ: MutableMapping[str, str]) -> list[str]:
    """Drop the caller's `BUS_*` variables (but `BUS_TEST_*` and KEPT), then set those the
    suite was asked for through FORWARDED; return the names dropped."""
    dropped = [k for k in environ if k.startswith("BUS_") and not k.startswith(TEST_PREFIX) and k not in KEPT]
    for name in dropped:
        del environ[name]
    for test_name, name in FORWARDED.items():
        if environ.get(test_name):
            environ[name] = environ[test_name]
    return dropped


SCRUBBED = scrub_bus_environment(os.environ)

from bus.config import KafkaSettings  # noqa: E402  (after the scrub, whatever it reads at import)

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    if os.environ.get("BUS_TEST_BOOTSTRAP"):
        yield KafkaSettings(bootstrap=os.environ["BUS_TEST_BOOTSTRAP"])
        return
    if os.environ.get("BUS_TEST_KAFKA") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.0").with_kraft() as container:
            yield KafkaSettings(bootstrap=container.get_bootstrap_server())
        return
    from bus.adapters.broker import LocalBroker, free_port

    broker = LocalBroker(tmp_path_factory.mktemp("broker"), port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield KafkaSettings(bootstrap=broker.bootstrap)
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests on the shared broker never see each other's data."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaSettings, object]]:
    """A second local broker with SCRAM-SHA-512 + ACLs: (admin settings, LocalBroker).

    Always a LocalBroker (its admin password and ACL authorizer are part of the test),
    started once per session on free ports and stopped at the end. It also has a
    SASL_SSL listener (`broker.tls_bootstrap`, CA in `broker.ca_file`). Provisioning owns
    the broker's grants: a module that provisions replaces what an earlier one set up.
    """
    from pydantic import SecretStr

    from bus.adapters.broker import ADMIN_USER, LocalBroker, free_port

    broker = LocalBroker(tmp_path_factory.mktemp("secure-broker"), port=free_port(),
                         controller_port=free_port(), secure=True, heap="512m",
                         tls=True, tls_port=free_port())
    broker.start()
    try:
        yield KafkaSettings(
            bootstrap=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", sasl_username=ADMIN_USER,
            sasl_password=SecretStr(broker.admin_password()),
        ), broker
    finally:
        broker.stop()
