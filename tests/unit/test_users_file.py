"""Console users: argon2id hashes in a 0600 file, never a password."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from bus.adapters.users_file import UsersFile
from bus.errors import UsersFileError
from tests.helpers import BUS, REPO


def add_user(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUS, "console", "add-user", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "NO_COLOR": "1"}, timeout=60)


def test_a_user_is_stored_as_a_hash_in_a_private_file(tmp_path):
    users = UsersFile(tmp_path / "users.yaml")
    assert users.add("alice", "a long enough secret") is True
    text = (tmp_path / "users.yaml").read_text()
    assert "a long enough secret" not in text and "$argon2id$" in text
    assert stat.S_IMODE((tmp_path / "users.yaml").stat().st_mode) == 0o600
    assert users.verify("alice", "a long enough secret")
    assert not users.verify("alice", "a long enough secreT")
    assert not users.verify("bob", "a long enough secret")


def test_rules_for_names_passwords_and_replacing(tmp_path):
    users = UsersFile(tmp_path / "users.yaml")
    with pytest.raises(UsersFileError, match="too short"):
        users.add("alice", "short")
    with pytest.raises(UsersFileError, match="is not allowed"):
        users.add("alice smith", "a long enough secret")
    users.add("alice", "a long enough secret")
    with pytest.raises(UsersFileError, match="already exists"):
        users.add("alice", "another long secret")
    assert users.add("alice", "another long secret", replace=True) is False
    assert users.verify("alice", "another long secret") and not users.verify("alice", "a long enough secret")


def test_a_file_others_can_read_is_refused(tmp_path):
    users = UsersFile(tmp_path / "users.yaml")
    users.add("alice", "a long enough secret")
    (tmp_path / "users.yaml").chmod(0o644)
    with pytest.raises(UsersFileError, match="chmod 600"):
        UsersFile(tmp_path / "users.yaml").verify("alice", "a long enough secret")


def test_add_user_reads_the_password_from_stdin_and_never_echoes_it(tmp_path):
    path = tmp_path / "users.yaml"
    result = add_user("--users", str(path), "--password-stdin", "alice", stdin="a long enough secret\n")
    assert result.returncode == 0, result.stderr
    assert "added console user alice" in result.stdout and "secret" not in result.stdout + result.stderr
    assert UsersFile(path).verify("alice", "a long enough secret")
    again = add_user("--users", str(path), "--password-stdin", "alice", stdin="x" * 20)
    assert again.returncode == 2 and "already exists" in again.stderr
