"""The wheel users install works on its own: built, installed in a fresh venv outside the
checkout, it publishes and reads back verified alerts with only its declared dependencies.

Honest and fast:
- the wheel is built the way a release is (`python -m build`: sdist, then the wheel
  from the sdist), without build isolation so no index is asked for setuptools; the
  build still checks that `[build-system] requires` is satisfied;
- the fresh venv has no pip and no access to this venv's packages; pip installs into
  it with `--no-index` from a wheelhouse of exactly the dependencies the wheel
  declares (Requires-Dist), built once per dependency list and cached. A dependency
  missing from pyproject.toml is missing from the venv, and the import fails here;
- every command runs from a temporary directory with PYTHONPATH and the caller's
  BUS_* settings removed, so neither the checkout nor the environment can stand in
  for package data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bus.config import KafkaSettings
from tests.helpers import REPO

PIP = [sys.executable, "-m", "pip"]
WHEELHOUSE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "epa-bus" / "wheelhouse"

#: Shipped with the package: the bus does not work without them (bus.adapters.resources).
PACKAGE_DATA = [
    "bus/py.typed",
    "connectors/py.typed",
    "bus/_data/avro/eu.epa.bus.AlertHeader.avsc",
    "bus/_data/avro/suspicious-container.avsc",
    "bus/_data/avro/corruption-indicator.avsc",
    "bus/_data/avro/operation-notice.avsc",
    "bus/_data/codelists/empact.yaml",
    "bus/_data/policies/default.yaml",
    "bus/_data/policies/default.cases.yaml",
    "bus/_data/examples/suspicious-container.json",
    "bus/_data/examples/batch.jsonl",
    "bus/adapters/kafka-pom.xml",
    "connectors/edifact/samples/01-codeco-gate-in.edi",
    "connectors/http_ingest/openapi.json",
]


def outside_env() -> dict[str, str]:
    """The caller's environment without anything that would put the checkout on sys.path
    (a `PYTHONPATH` pointing at a source tree makes pip think the package is installed)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("BUS_", "PYTHON")) and k != "VIRTUAL_ENV"}


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240,
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=outside_env() if env is None else env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def requirements(wheel: Path) -> list[str]:
    """The wheel's runtime dependencies (Requires-Dist without extras such as dev)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return sorted(
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )


def wheelhouse(wheel: Path, scratch: Path) -> Path:
    """Wheels of exactly the declared dependencies, built once per dependency list."""
    key = hashlib.sha256("\n".join([sys.version, *requirements(wheel)]).encode()).hexdigest()[:16]
    house = WHEELHOUSE_CACHE / key
    if house.is_dir():
        return house
    WHEELHOUSE_CACHE.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=WHEELHOUSE_CACHE))
    run([*PIP, "wheel", "-q", "--wheel-dir", str(building), str(wheel)], cwd=scratch)
    for own in building.glob("epa_bus-*.whl"):
        own.unlink()  # this test installs the freshly built one
    try:
        building.rename(house)
    except OSError:  # another session finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    return house


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path  # a working directory outside the checkout

    def env(self, settings: KafkaSettings) -> dict[str, str]:
        clean = outside_env()
        return {**clean, "PATH": f"{self.venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}",
                "BUS_BOOTSTRAP": settings.bootstrap, "NO_COLOR": "1", "COLUMNS": "200"}

    def bus(self, *args: str, settings: KafkaSettings) -> subprocess.CompletedProcess[str]:
        return run([str(self.venv / "bin" / "bus"), *args], cwd=self.home, env=self.env(settings))

    def python(self, code: str, settings: KafkaSettings) -> subprocess.CompletedProcess[str]:
        return run([str(self.venv / "bin" / "python"), "-c", code], cwd=self.home, env=self.env(settings))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    scratch = tmp_path_factory.mktemp("wheel")
    assert not scratch.resolve().is_relative_to(REPO.resolve())
    dist = scratch / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)], cwd=scratch)
    (wheel,) = dist.glob("epa_bus-*.whl")
    venv = scratch / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=scratch)
    run([*PIP, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile", "--no-index",
         "--find-links", str(wheelhouse(wheel, scratch)), str(wheel)], cwd=scratch)
    home = scratch / "home"
    home.mkdir()
    yield Installed(wheel, venv, home)


def test_the_wheel_carries_the_data_the_bus_reads(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    assert [name for name in PACKAGE_DATA if name not in names] == []
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_bus_publish_and_tail_from_the_installed_wheel(installed: Installed, kafka: KafkaSettings) -> None:
    where = installed.python("import bus.adapters.resources as r; print(r.example_alert('suspicious-container.json'))",
                             kafka).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), f"example alert found outside the venv: {where}"
    installed.bus("keygen", "--member", "NL-CUSTOMS", "--out", "keys", settings=kafka)
    since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    published = installed.bus("publish", "--file", where, "--member", "NL-CUSTOMS", "--key", "keys/NL-CUSTOMS.key",
                              "--json", settings=kafka)
    (receipt,) = [json.loads(line) for line in published.stdout.splitlines() if line.strip()]
    tailed = installed.bus("tail", receipt["topic"], "--keys", "keys", "--json", "--since", since, settings=kafka)
    ours = [json.loads(line) for line in tailed.stdout.splitlines()
            if line.strip() and receipt["message_id"] in line]
    assert len(ours) == 1, tailed.stdout
    assert ours[0]["verified"] is True
    assert ours[0]["alert"]["header"]["empact_priority"] == {"cycle": "2026-2029", "code": "CCH"}


PUBLIC_API = """
import json, bus
from datetime import UTC, datetime, timedelta

since = datetime.now(UTC) - timedelta(seconds=5)
settings = bus.KafkaSettings()
key = bus.load_signing_key("keys/BE-CUSTOMS.key", "BE-CUSTOMS")
alert = {"header": {"alert_type": "suspicious-container", "tlp": "AMBER", "source_reliability": "B",
                    "information_assessment": "2", "summary": "Scan anomaly behind declared bananas."},
         "container_number": "CSQU3054383"}
[receipt] = bus.publish(settings, key, alert)
records = [r for r in bus.read_feed(settings, receipt.topic, bus.load_keyring("keys"), since=since)
           if r.ok and str(r.verified.message_id) == receipt.message_id]
print(json.dumps({"module": bus.__file__, "found": len(records), "producer": records[0].verified.producer}))
"""


def test_public_api_from_the_installed_wheel(installed: Installed, kafka: KafkaSettings) -> None:
    installed.bus("keygen", "--member", "BE-CUSTOMS", "--out", "keys", settings=kafka)
    # the last line: unconfigured structlog also prints the publisher's log lines to stdout
    result = json.loads(installed.python(PUBLIC_API, kafka).stdout.splitlines()[-1])
    assert Path(result["module"]).is_relative_to(installed.venv)
    assert result["found"] == 1 and result["producer"] == "BE-CUSTOMS"
