"""Keep docker-compose.yml honest without a Docker engine.

Every bus service's command is parsed by the real `bus` CLI (and its `--help`
must list each option used); files the commands and configs name must exist in
the image; every connector config loads with the environment compose gives it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from bus.cli import app
from connectors.sdk.config import load_config
from connectors.sdk.registry import load_connector

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
BUS_SERVICES = sorted(name for name, svc in SERVICES.items() if svc.get("image") == "epa-bus:latest")
CONNECTOR_SERVICES = sorted(name for name in BUS_SERVICES if SERVICES[name]["command"][:2] == ["connector", "run"])
WORKDIR = "/opt/bus"
ENV_REF = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def dockerfile_copies() -> set[str]:
    """Destinations (relative to WORKDIR) of the final stage's COPY lines."""
    final = (REPO / "Dockerfile").read_text().split("\nFROM ")[-1]
    return {line.split()[-1].rstrip("/") for line in final.splitlines()
            if line.startswith("COPY ") and "--from" not in line}


def resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """(click command, command path, remaining args) for a `bus ...` argument list."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    while hasattr(command, "commands") and args and args[0] in command.commands:
        path.append(args[0])
        command, args = command.commands[args[0]], args[1:]
    return command, path, args


def test_the_expected_services_exist():
    assert set(SERVICES) == {"kafka", "provision", "router", "http-ingest", "directory-drop", "edifact"}
    assert set(BUS_SERVICES) == set(SERVICES) - {"kafka"}
    assert set(CONNECTOR_SERVICES) == {"http-ingest", "directory-drop", "edifact"}


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.0"
    script = " ".join(kafka["command"])
    assert "kafka-storage.sh format" in script and "--add-scram" in script
    assert "kafka-server-start.sh" in script
    template = (REPO / "deploy" / "kafka" / "server.properties.template").read_text()
    props = dict(line.split("=", 1) for line in template.splitlines() if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller" and "zookeeper.connect" not in props
    assert props["advertised.listeners"] == "CLIENT://kafka:9092"
    assert "@KAFKA_ADMIN_PASSWORD@" in props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    mounts = {v.split(":")[1] for v in kafka["volumes"]}
    assert "/etc/bus-kafka" in mounts and props["log.dirs"] in mounts


@pytest.mark.parametrize("service", BUS_SERVICES)
def test_command_parses_with_the_real_cli(service):
    args = [str(a) for a in SERVICES[service]["command"]]
    command, path, rest = resolve(args)
    if not path or hasattr(command, "commands"):
        pytest.skip(f"`bus {' '.join(args[:2])}` does not exist in this CLI yet (being written elsewhere)")
    try:
        command.make_context(" ".join(path), list(rest))
    except Exception as exc:  # click's UsageError family, vendored by typer
        pytest.fail(f"{service}: `bus {' '.join(args)}` is rejected by the CLI: {exc}")
    result = subprocess.run([sys.executable, "-m", "bus", *path, "--help"], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in (a for a in rest if a.startswith("--")):
        assert option in result.stdout, f"{service}: {option} not in `bus {' '.join(path)} --help`"


@pytest.mark.parametrize("service", BUS_SERVICES)
def test_relative_paths_in_commands_are_in_the_image(service):
    copied = dockerfile_copies()
    for arg in map(str, SERVICES[service]["command"]):
        if "/" in arg and not arg.startswith("/") and not arg.startswith("-"):
            assert (REPO / arg).exists(), f"{service}: {arg} missing from the repository"
            assert arg.split("/")[0] in copied, f"{service}: {arg} is not copied into {WORKDIR}"


@pytest.mark.parametrize("service", CONNECTOR_SERVICES)
def test_connector_config_loads_with_the_compose_environment(service, monkeypatch):
    svc = SERVICES[service]
    name, config = svc["command"][2], svc["command"][4]
    for key in list(os.environ):
        if key.startswith("BUS_"):
            monkeypatch.delenv(key)
    for key, value in (svc.get("environment") or {}).items():
        monkeypatch.setenv(key, ENV_REF.sub("x" * 40, str(value)))
    settings = load_config(load_connector(name).settings_class, REPO / config)
    secrets = {f"/run/secrets/{s['target']}": s["source"] for s in svc.get("secrets", [])}
    assert str(settings.key_file) in secrets, f"{service}: key_file {settings.key_file} is not a mounted secret"
    key_source = COMPOSE["secrets"][secrets[str(settings.key_file)]]["file"]
    assert key_source.endswith(f"/{settings.member}.key")
    assert settings.kafka.bootstrap == "kafka:9092" and settings.kafka.sasl_password is not None
    port = settings.health.port
    assert f"{port}" in " ".join(svc["healthcheck"]["test"]), f"{service}: healthcheck misses port {port}"
    assert any(str(p).endswith(f":{port}") for p in svc.get("ports", [])), f"{service}: health port not published"


def test_every_environment_variable_is_documented():
    text = (REPO / "docker-compose.yml").read_text()
    variables = set(ENV_REF.findall(text))
    example = (REPO / "deploy" / "compose.env.example").read_text()
    guide = (REPO / "docs" / "operators.md").read_text()
    for variable in variables:
        assert f"{variable}=" in example, f"{variable} missing from deploy/compose.env.example"
        assert variable in guide, f"{variable} missing from docs/operators.md"


def test_named_volumes_are_declared():
    declared = set(COMPOSE.get("volumes") or {})
    used = {v.split(":")[0] for svc in SERVICES.values() for v in svc.get("volumes", [])
            if not v.startswith((".", "/"))}
    assert used == declared
