"""The console's officers: a 0600 YAML file of user names and argon2id password hashes.

    # EPA bus console users: `bus console add-user` manages this file.
    users:
      alice: {hash: "$argon2id$v=19$m=65536,t=3,p=4$...", added: "2026-03-01T08:00:00Z"}

Only hashes are stored (argon2-cffi's `PasswordHasher`, the RFC 9106 recommended
argon2id parameters), so a copied file gives away no password. A sign-in for an
unknown user still computes one hash, so response times do not tell which names exist.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bus.adapters.private_file import write_private
from bus.errors import UsersFileError

HEADER = "# EPA bus console users (argon2id hashes); manage with `bus console add-user`.\n"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 12

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password: equalises the time of unknown users")


@dataclass(frozen=True)
class User:
    name: str
    hash: str
    added: str


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise UsersFileError(
            f"user name {name[:70]!r} is not allowed: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersFileError(f"password too short: at least {MIN_PASSWORD_CHARS} characters")
    return password


class UsersFile:
    """The users of one console; re-read when the file changes, so added users can sign in at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def _read(self) -> dict[str, User]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return {}
        except OSError as exc:
            raise UsersFileError(f"cannot read users file {self.path}: {exc.strerror or exc}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsersFileError(f"users file {self.path} is accessible by group or others "
                                 f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {self.path}`")
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return self._users
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsersFileError(f"cannot read users file {self.path}: {type(exc).__name__}") from None
        users = data.get("users") if isinstance(data, dict) else None
        if users is None:
            users = {}
        if not isinstance(users, dict):
            raise UsersFileError(f"{self.path}: expected `users:` mapping user names to {{hash, added}}")
        parsed: dict[str, User] = {}
        for name, entry in users.items():
            if not (isinstance(name, str) and isinstance(entry, dict) and isinstance(entry.get("hash"), str)
                    and entry["hash"].startswith("$argon2")):
                raise UsersFileError(f"{self.path}: user {str(name)[:70]!r} needs `hash:` with an argon2 hash")
            parsed[name] = User(name, entry["hash"], str(entry.get("added", "")))
        self._stamp, self._users = stamp, parsed
        return parsed

    def users(self) -> list[str]:
        return sorted(self._read())

    def exists(self, name: str) -> bool:
        return name in self._read()

    def verify(self, name: str, password: str) -> bool:
        """True if `name` exists and `password` is its password (constant work either way)."""
        user = self._read().get(name)
        try:
            return _hasher.verify(user.hash if user else _DUMMY_HASH, password) and user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def add(self, name: str, password: str, *, replace: bool = False) -> bool:
        """Add a user (or set a new password with `replace`); return True if the user was new."""
        check_user_name(name)
        check_password(password)
        users = dict(self._read())
        new = name not in users
        if not new and not replace:
            raise UsersFileError(f"user {name!r} already exists in {self.path}; use --replace to set a new password")
        added = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        users[name] = User(name, _hasher.hash(password), added)
        self._write(users)
        return new

    def remove(self, name: str) -> None:
        users = dict(self._read())
        if users.pop(name, None) is None:
            raise UsersFileError(f"no user {name!r} in {self.path}")
        self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        document = {"users": {u.name: {"hash": u.hash, "added": u.added} for u in users.values()}}
        write_private(self.path, HEADER + yaml.safe_dump(document, sort_keys=True))
        self._stamp = None
        self._read()


__all__ = ["MIN_PASSWORD_CHARS", "User", "UsersFile", "check_password", "check_user_name"]
