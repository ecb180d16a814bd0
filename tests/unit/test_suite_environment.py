"""The test suite ignores the caller's `BUS_*` settings (an operator's shell exports them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bus.config import DEFAULT_BOOTSTRAP, KafkaSettings, load_settings
from connectors.sdk.config import ConnectorSettings, load_config
from connectors.sdk.testing import write_config
from tests.conftest import scrub_bus_environment
from tests.helpers import REPO

OPERATOR_SHELL = {
    "BUS_BOOTSTRAP": "127.0.0.1:1",
    "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "BUS_SASL_USERNAME": "x",
    "BUS_SASL_PASSWORD": "not-for-tests",
    "BUS_CONFIG": "/nonexistent/bus.yaml",
    "BUS_CONNECTOR_MEMBER": "XX-ELSEWHERE",
}


def test_only_the_suites_own_variables_survive_the_scrub():
    environ = {**OPERATOR_SHELL, "BUS_TEST_BOOTSTRAP": "kafka:9092", "BUS_KAFKA_CACHE": "/cache",
               "BUS_KAFKA_ENGINE": "kafka-python", "BUS_TEST_KAFKA_ENGINE": "confluent", "HOME": "/root"}
    dropped = scrub_bus_environment(environ)
    assert sorted(dropped) == sorted([*OPERATOR_SHELL, "BUS_KAFKA_ENGINE"])
    assert environ == {"BUS_TEST_BOOTSTRAP": "kafka:9092", "BUS_KAFKA_CACHE": "/cache",
                       "BUS_TEST_KAFKA_ENGINE": "confluent", "BUS_KAFKA_ENGINE": "confluent", "HOME": "/root"}


def test_settings_built_by_the_tests_see_no_bus_variable(tmp_path: Path):
    """What the fixtures and helpers build: KafkaSettings, CLI settings, connector configs."""
    leaked = sorted(k for k in os.environ if k.startswith("BUS_") and not k.startswith("BUS_TEST_")
                    and k not in ("BUS_KAFKA_CACHE", "BUS_KAFKA_ENGINE"))
    assert leaked == []
    fixture_like = KafkaSettings(bootstrap="127.0.0.1:39092")  # as the `kafka` fixture builds it
    assert (fixture_like.security_protocol, fixture_like.sasl_username, fixture_like.sasl_password) == (
        "PLAINTEXT", None, None)
    assert load_settings().bootstrap == DEFAULT_BOOTSTRAP
    key = tmp_path / "NL-CUSTOMS.key"
    config = load_config(ConnectorSettings, write_config(tmp_path / "c.yaml", {
        "member": "NL-CUSTOMS", "key_file": str(key), "kafka": {"bootstrap": "127.0.0.1:39092"}}))
    assert (config.member, config.kafka.bootstrap, config.kafka.security_protocol) == (
        "NL-CUSTOMS", "127.0.0.1:39092", "PLAINTEXT")


def test_an_operators_exported_settings_do_not_reach_the_tests():
    """Runs the test above in a pytest whose caller exported an operator's settings."""
    env = {**os.environ, **OPERATOR_SHELL}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{Path(__file__).relative_to(REPO)}::test_settings_built_by_the_tests_see_no_bus_variable"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
