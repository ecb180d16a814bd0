"""Which router instance this process is: a lock file held for the life of the process.

Any number of `bus router run` processes with the same flags share the routing
tasks; each needs its own identity (transactional id, static group membership,
local state folder). Without `--instance`, a process takes the lowest numbered slot
nobody holds, `<state-dir>/instances/<n>.lock`, and is `<hostname>-<n>`: two
processes on one host get distinct identities, and a process restarted after a
SIGKILL gets its old one back, since the kernel released the dead process's lock.
With `--instance NAME`, the lock is `<state-dir>/instances/NAME.lock`, and a second
process finds it held and stops.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from pathlib import Path
from typing import IO

from bus.errors import AlreadyRunning, ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_SLOTS = 1000


def _try_lock(path: Path) -> IO[str] | None:
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the process's life)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"


def default_hostname() -> str:
    """The host part of a default instance name, made safe for Kafka ids."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0]) or "host"
    return host[:60]


class InstanceLock:
    """The lock that makes this process router instance `name`; held until `release`."""

    def __init__(self, name: str, path: Path, handle: IO[str]) -> None:
        self.name = name
        self.path = path
        self._handle: IO[str] | None = handle

    @classmethod
    def acquire(cls, state_dir: Path, instance: str | None = None, *, hostname: str | None = None) -> InstanceLock:
        folder = state_dir / "instances"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {folder}: {exc.strerror or exc}",
                              [("state_dir", "must be a writable folder")]) from None
        if instance is not None:
            if not _NAME.fullmatch(instance):
                raise ConfigError(f"router instance name {instance!r} must be letters, digits, '.', '_' or '-'",
                                  [("instance", "letters, digits, '.', '_', '-' (at most 100)")])
            path = folder / f"{instance}.lock"
            handle = _try_lock(path)
            if handle is None:
                raise AlreadyRunning(f"router instance {instance} is already running (pid {_holder(path)}); "
                                     "give this one another --instance, or none to take a free slot")
            return cls(instance, path, handle)
        host = hostname or default_hostname()
        for n in range(1, MAX_SLOTS + 1):
            path = folder / f"{n}.lock"
            handle = _try_lock(path)
            if handle is not None:
                return cls(f"{host}-{n}", path, handle)
        raise AlreadyRunning(f"all {MAX_SLOTS} router slots under {folder} are taken")

    def release(self) -> None:
        if self._handle is not None:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            finally:
                self._handle.close()
                self._handle = None
