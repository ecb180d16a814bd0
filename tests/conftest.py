"""Session-wide fixtures: one real Kafka broker per test session.

Where it comes from (first match wins):
- `BUS_TEST_BOOTSTRAP=host:port`: an existing cluster;
- `BUS_TEST_KAFKA=testcontainers`: testcontainers' Kafka module (needs Docker);
- otherwise `bus.adapters.broker.LocalBroker` on a free port in a temp dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.config import KafkaSettings

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
