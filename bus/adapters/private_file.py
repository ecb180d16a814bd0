"""Files that hold a secret (passwords, private keys, configs that embed them): 0600 from birth.

A secret written with `open(path, "w")` and then `chmod`-ed is world-readable for a
moment under the usual umask 022, and `os.open(..., 0o600)` does not change the mode of
a file that already exists (an older 0644 copy keeps 0644). So the content is written to a
new temporary file, which `tempfile.mkstemp` creates 0600 whatever the umask, and renamed
over the target: no reader ever sees the secret under any other mode, nor half of it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace `path` with `data`, readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def git_exposure(path: Path) -> str | None:
    """Why a secret written to `path` could end up in a repository, or None if it cannot: the
    path is inside a git work tree and git does not confirm that it ignores it."""
    directory = path.resolve().parent
    while not directory.exists():
        directory = directory.parent
    if not any((p / ".git").exists() for p in (directory, *directory.parents)):
        return None
    try:
        result = subprocess.run(["git", "check-ignore", "-q", str(path.resolve())],
                                cwd=directory, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return f"{path} is inside a git work tree and git could not confirm it is ignored"
    if result.returncode == 0:
        return None
    return (f"{path} is inside a git work tree and not ignored; keep secrets outside the "
            "repository or add the file to .gitignore")


__all__ = ["PRIVATE_MODE", "git_exposure", "write_private"]
