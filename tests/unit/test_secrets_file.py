"""SCRAM passwords: private file, environment override, generated without ever being shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus.adapters.secrets_file import SecretsFile, env_name
from bus.errors import SecretsError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_env_names():
    assert env_name("nl-customs") == "BUS_SECRET_NL_CUSTOMS"
    assert env_name("svc-router") == "BUS_SECRET_SVC_ROUTER"


def test_environment_wins_over_the_file(tmp_path):
    path = write(tmp_path / "s.yaml", "users:\n  nl-customs: from-file\n  europol: e\n")
    secrets = SecretsFile(path, env={"BUS_SECRET_NL_CUSTOMS": "from-env"})
    assert secrets.password("nl-customs").get_secret_value() == "from-env"
    assert secrets.password("europol").get_secret_value() == "e"
    assert secrets.password("ghost") is None
    assert secrets.source("nl-customs") == "$BUS_SECRET_NL_CUSTOMS"
    assert secrets.source("europol") == str(path)
    assert secrets.missing(["europol", "ghost"]) == ["ghost"]
    assert "from-env" not in repr(secrets.password("nl-customs"))


def test_readable_by_others_is_refused(tmp_path):
    path = write(tmp_path / "s.yaml", "users: {a: b}\n", mode=0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        SecretsFile(path, env={})


def test_errors_do_not_quote_the_file(tmp_path):
    path = write(tmp_path / "s.yaml", "users:\n  a: [unclosed hunter2\n")
    with pytest.raises(SecretsError) as info:
        SecretsFile(path, env={})
    assert "hunter2" not in str(info.value)
    path = write(tmp_path / "t.yaml", "users:\n  a: 12345\n")
    with pytest.raises(SecretsError, match="non-empty password strings") as info:
        SecretsFile(path, env={})
    assert "12345" not in str(info.value)


def test_generate_creates_a_private_file_and_keeps_existing(tmp_path):
    path = write(tmp_path / "s.yaml", "users:\n  europol: keep-me\n")
    secrets = SecretsFile(path, env={})
    assert secrets.generate(["svc-router", "nl-customs"]) == ["svc-router", "nl-customs"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = SecretsFile(path, env={})
    assert again.password("europol").get_secret_value() == "keep-me"
    generated = again.password("svc-router").get_secret_value()
    assert len(generated) >= 40 and generated != again.password("nl-customs").get_secret_value()


def test_generate_into_a_new_file(tmp_path):
    path = tmp_path / "sub" / "secrets.yaml"
    SecretsFile(path, env={}).generate(["a"])
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_generate_refuses_a_tracked_place_in_the_repository():
    path = REPO / "bus" / "leaked-passwords.yaml"
    with pytest.raises(SecretsError, match="git work tree"):
        SecretsFile(path, env={}).generate(["a"])
    assert not path.exists()


def test_generate_needs_a_file():
    with pytest.raises(SecretsError, match="--secrets"):
        SecretsFile(None, env={}).generate(["a"])
