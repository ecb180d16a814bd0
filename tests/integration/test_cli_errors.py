"""Honest errors through the CLI (issue 16): each class of Kafka failure gives one line on
stderr, naming the problem, and its own exit code (bus.errors; the README lists them).

Both engines: the error classes are part of the port's contract, and the CLI only reports
them. The secured broker is the session's `secure_kafka` (SCRAM + ACLs, and a TLS listener).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bus.adapters.broker import free_port
from bus.adapters.kafka import open_engine
from bus.adapters.keystore import generate_keypair
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.topology import TopicSpec
from bus.errors import (
    AuthenticationFailed,
    KafkaUnavailable,
    NotAuthorized,
    ProtocolMismatch,
    TlsFailed,
)
from tests.helpers import REPO, run_bus, wait_for

ENGINES = ["confluent", "kafka-python"]
ALERT = str(REPO / "examples/alerts/suspicious-container.json")


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connection(settings: KafkaSettings, engine: str) -> dict[str, str]:
    """The environment a user's shell would have for these settings."""
    env = {"BUS_BOOTSTRAP": settings.bootstrap, "BUS_KAFKA_ENGINE": engine,
           "BUS_SECURITY_PROTOCOL": settings.security_protocol}
    if settings.sasl_username:
        env["BUS_SASL_USERNAME"] = settings.sasl_username
    if settings.sasl_password:
        env["BUS_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile:
        env["BUS_SSL_CAFILE"] = str(settings.ssl_cafile)
    return env


def one_error_line(stderr: str) -> str:
    """The command's whole stderr: exactly one line, no client log noise, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: ")
    return lines[0]


def tail(env: dict[str, str], topic: str = "alerts.suspicious-container") -> tuple[int, str]:
    keys = REPO / "federation"
    result = run_bus("tail", topic, "--federation", str(keys / "federation.yaml"),
                     "--authority-pub", str(keys / "authority.pub"), env=env, timeout=60)
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def member(secure_kafka: tuple[KafkaSettings, Any]) -> KafkaSettings:
    """A SCRAM user allowed to write one scratch topic, and nothing else."""
    admin_settings, _ = secure_kafka
    user, password = "cli-errors", "cli-errors-password"
    grant = [ap.AclBinding(ap.principal(user), ap.ResourceType.TOPIC, ap.PatternType.LITERAL, "cli-errors.scratch",
                           ap.Operation.WRITE)]
    admin = open_engine(admin_settings).admin()
    try:
        admin.upsert_scram_user(user, password)
        admin.create_acls(grant)
        wait_for(lambda: user in admin.scram_users() and set(grant) <= set(admin.describe_acls()), 20,
                 "the user and its grant")
    finally:
        admin.close()
    return admin_settings.model_copy(update={"sasl_username": user, "sasl_password": SecretStr(password)})


def test_unreachable(engine_name: str) -> None:
    port = free_port()
    code, stderr = tail({"BUS_BOOTSTRAP": f"127.0.0.1:{port}", "BUS_KAFKA_ENGINE": engine_name})
    line = one_error_line(stderr)
    assert code == KafkaUnavailable.exit_code == 3
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in line and "bus broker start" in line


def test_sasl_credentials_without_a_sasl_protocol(kafka: KafkaSettings, engine_name: str) -> None:
    env = {"BUS_BOOTSTRAP": kafka.bootstrap, "BUS_KAFKA_ENGINE": engine_name,
           "BUS_SASL_USERNAME": "nl-customs", "BUS_SASL_PASSWORD": "secret"}
    code, stderr = tail(env)
    line = one_error_line(stderr)
    assert code == ProtocolMismatch.exit_code == 7
    assert "SASL credentials for user 'nl-customs'" in line and "PLAINTEXT" in line
    assert "secret" not in stderr


def test_a_plaintext_client_at_a_sasl_listener(secure_kafka: tuple[KafkaSettings, Any], engine_name: str) -> None:
    settings, _ = secure_kafka
    code, stderr = tail({"BUS_BOOTSTRAP": settings.bootstrap, "BUS_KAFKA_ENGINE": engine_name})
    line = one_error_line(stderr)
    assert code == ProtocolMismatch.exit_code
    assert settings.bootstrap in line and "--security-protocol" in line


def test_wrong_password(member: KafkaSettings, engine_name: str) -> None:
    wrong = member.model_copy(update={"sasl_password": SecretStr("not-the-password")})
    code, stderr = tail(connection(wrong, engine_name))
    line = one_error_line(stderr)
    assert code == AuthenticationFailed.exit_code == 4
    assert "authentication failed" in line and "'cli-errors'" in line
    assert "not-the-password" not in stderr


def test_not_authorised_names_the_topic_and_the_user(member: KafkaSettings, engine_name: str,
                                                    tmp_path: Path) -> None:
    code, stderr = tail(connection(member, engine_name), "feed.europol")
    line = one_error_line(stderr)
    assert code == NotAuthorized.exit_code == 5
    assert "not authorised" in line and "topic feed.europol" in line and "connected as cli-errors" in line

    published = run_bus("publish", "--file", ALERT, "--member", "NL-CUSTOMS", "--no-encrypt",
                        "--key", str(generate_keypair("NL-CUSTOMS", tmp_path)[0]),
                        env=connection(member, engine_name), timeout=60)
    line = one_error_line(published.stderr)
    assert published.returncode == NotAuthorized.exit_code
    assert "topic alerts.suspicious-container" in line and "connected as cli-errors" in line


def test_tls_verification_failed(member: KafkaSettings, secure_kafka: tuple[KafkaSettings, Any],
                                 engine_name: str) -> None:
    _, broker = secure_kafka
    over_tls = member.model_copy(update={"bootstrap": broker.tls_bootstrap, "security_protocol": "SASL_SSL"})
    code, stderr = tail(connection(over_tls, engine_name))  # the system's CAs do not know the broker's
    line = one_error_line(stderr)
    assert code == TlsFailed.exit_code == 6
    assert "TLS" in line and broker.tls_bootstrap.rsplit(":", 1)[1] in line
    trusted = over_tls.model_copy(update={"ssl_cafile": broker.ca_file})
    code, stderr = tail(connection(trusted, engine_name), "feed.europol")
    assert code == NotAuthorized.exit_code, stderr  # through TLS, as far as the grants go


def test_a_working_command_prints_no_client_log_lines(secure_kafka: tuple[KafkaSettings, Any], engine_name: str,
                                                      tmp_path: Path) -> None:
    """kafka-python warns on every SCRAM login over SASL_PLAINTEXT; librdkafka logs its own way.
    Neither reaches the console (they go to the `bus.kafka` logger at DEBUG)."""
    settings, _ = secure_kafka
    topic = "cli-errors.quiet"
    Bus(settings).ensure_topics([TopicSpec(topic, 1, 1)])
    generate_keypair("NL-CUSTOMS", tmp_path)
    result = run_bus("tail", topic, "--keys", str(tmp_path), env=connection(settings, engine_name), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "0 record(s)" in result.stdout
