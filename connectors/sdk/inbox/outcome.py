"""Moving handled files out of the inbox, with a report an operator can act on."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from connectors.sdk.files import atomic_write_text, fsync_dir

REPORT_SUFFIX = ".errors.txt"


def destination(directory: Path, name: str) -> Path:
    """`name` in `directory`, or a timestamped variant if a file of that name was handled before."""
    target = directory / name
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    stem, dot, suffix = name.partition(".")
    return directory / f"{stem}.{stamp}{dot}{suffix}"


def move(path: Path, directory: Path, target: Path | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = target or destination(directory, path.name)
    os.replace(path, target)
    fsync_dir(directory)
    return target


def report_path(moved: Path) -> Path:
    return moved.with_name(moved.name + REPORT_SUFFIX)


def write_report(path: Path, *, source: str, sha256: str, verdict: str, problems: list[str]) -> None:
    lines = [
        f"file: {source}",
        f"sha256: {sha256}",
        f"handled: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"result: {verdict}",
        "",
        *problems,
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
