"""After `make demo` a newcomer's shell has no `bus`: the demo and the README say how to get it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bus.demo import bus_command, path_hint
from tests.helpers import REPO


def fake_venv(root: Path) -> Path:
    """A `.venv/bin` holding `python` and the `bus` script, as `make demo` leaves it."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "bus"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_demo_prints_the_venv_path_when_bus_is_not_on_path(tmp_path):
    bin_dir = fake_venv(tmp_path)
    elsewhere = tmp_path / "usr-bin"
    elsewhere.mkdir()
    command = bus_command(str(bin_dir / "python"), search_path=str(elsewhere), cwd=tmp_path)
    assert command == ".venv/bin/bus"
    hint = path_hint(command)
    assert hint is not None and "source .venv/bin/activate" in hint and "`.venv/bin/bus`" in hint


def test_the_demo_says_bus_once_the_venv_is_activated(tmp_path):
    bin_dir = fake_venv(tmp_path)
    command = bus_command(str(bin_dir / "python"), search_path=os.pathsep.join([str(bin_dir), "/usr/bin"]),
                          cwd=tmp_path)
    assert command == "bus" and path_hint(command) is None


def test_another_bus_on_path_is_not_taken_for_the_demos(tmp_path):
    bin_dir = fake_venv(tmp_path)
    other = fake_venv(tmp_path / "other")
    command = bus_command(str(bin_dir / "python"), search_path=str(other), cwd=tmp_path / "somewhere-else")
    assert command == str(bin_dir / "bus")


def test_the_readme_says_how_to_run_bus_right_after_its_two_commands():
    readme = (REPO / "README.md").read_text()
    first = re.search(r"## Two commands on a fresh machine\n(.*?)\n## ", readme, re.S)
    assert first is not None
    section = first.group(1)
    assert "make demo" in section and "make test" in section
    assert "source .venv/bin/activate" in section and ".venv/bin/bus" in section
