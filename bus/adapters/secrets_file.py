"""SCRAM passwords for provisioning: a 0600 YAML file, overridable from the environment.

File format: `users: {svc-router: "...", nl-customs: "..."}`. An environment variable
`BUS_SECRET_<USER>` (upper case, '-' -> '_', e.g. `BUS_SECRET_NL_CUSTOMS`) wins over the
file, so a vault or CI can inject passwords without a file. Passwords are handled as
`SecretStr` and are never printed or logged; generated ones go only into the file, which
must not be readable by group or others and must not be tracked by git.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import SecretStr

from bus.adapters.private_file import git_exposure, write_private
from bus.errors import SecretsError

ENV_PREFIX = "BUS_SECRET_"
PASSWORD_BYTES = 32


def env_name(user: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", user.upper())


def generate_password() -> str:
    """256 bits from the OS CSPRNG, URL-safe (no quoting trouble in YAML or JAAS)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )


class SecretsFile:
    """Passwords per user from `BUS_SECRET_<USER>` or the file (either may be absent)."""

    def __init__(self, path: Path | None, env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.env = os.environ if env is None else env
        self._users = self._read()

    def _read(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return {}
        _check_private(self.path)
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            # YAML errors quote the offending line, which may hold a password: say less.
            raise SecretsError(f"cannot read secrets file {self.path}: "
                               f"{type(exc).__name__}") from None
        users = data.get("users", {}) if isinstance(data, dict) else None
        if not isinstance(users, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in users.items()
        ):
            raise SecretsError(f"{self.path}: expected `users:` mapping user names to "
                               "non-empty password strings")
        return dict(users)

    def password(self, user: str) -> SecretStr | None:
        value = self.env.get(env_name(user)) or self._users.get(user)
        return SecretStr(value) if value else None

    def source(self, user: str) -> str:
        """Where a user's password comes from (for reports; never the value)."""
        if self.env.get(env_name(user)):
            return f"${env_name(user)}"
        if user in self._users:
            return str(self.path)
        return "missing"

    def missing(self, users: Iterable[str]) -> list[str]:
        return [u for u in users if self.password(u) is None]

    def generate(self, users: Iterable[str]) -> list[str]:
        """Store fresh random passwords for `users` in the file (0600); return their names."""
        users = list(users)
        if not users:
            return []
        if self.path is None:
            raise SecretsError("generating passwords needs --secrets FILE to store them in")
        risk = git_exposure(self.path)
        if risk:
            raise SecretsError(risk)
        if self.path.exists():
            _check_private(self.path)
        updated = {**self._users, **{u: generate_password() for u in users}}
        self._write(updated)
        self._users = updated
        return users

    def _write(self, users: dict[str, str]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = ("# SCRAM passwords: `bus provision` generates those of new users here.\n"
                "# Keep this file private (0600) and out of version control.\n"
                + yaml.safe_dump({"users": dict(sorted(users.items()))}, sort_keys=False))
        write_private(self.path, body)


__all__ = ["ENV_PREFIX", "SecretsFile", "env_name", "generate_password"]
