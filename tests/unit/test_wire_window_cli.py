"""`--accept-v1-0-until` reaches the verifier in `bus router run` and `bus tail`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bus.cli import app
from bus.core.keys import SigningKey
from bus.core.signing import V1_0_ACCEPTED_UNTIL

runner = CliRunner()


class Recorded(Exception):
    """Stops the command once the service got its arguments."""


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "NL-CUSTOMS.pub").write_bytes(SigningKey.generate("NL-CUSTOMS").public.to_pem())
    return tmp_path / "keys"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], V1_0_ACCEPTED_UNTIL),
        (["--accept-v1-0-until", "2026-12-01T12:00:00Z"], datetime(2026, 12, 1, 12, tzinfo=UTC)),
        (["--accept-v1-0-until", "2026-12-01"], datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_router_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys_dir: Path,
                    given: list[str], expected: datetime) -> None:
    seen: dict[str, Any] = {}

    def fake_router(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Recorded

    monkeypatch.setattr("bus.services.router.Router", fake_router)
    router_key = tmp_path / "router.key"
    router_key.write_bytes(SigningKey.generate("EPA-ROUTER-1").to_pem())
    router_key.chmod(0o600)
    result = runner.invoke(app, ["router", "run", "--policy", str(tmp_path / "p.yaml"), "--keys", str(keys_dir),
                                 "--router-key", str(router_key), "--state-dir", str(tmp_path / "state"), *given])
    assert isinstance(result.exception, Recorded), result.output
    assert seen["options"].accept_v1_0_until == expected


def test_tail(monkeypatch: pytest.MonkeyPatch, keys_dir: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_reader(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Recorded

    monkeypatch.setattr("bus.services.reader.FeedReader", fake_reader)
    result = runner.invoke(app, ["tail", "alerts.suspicious-container", "--keys", str(keys_dir),
                                 "--accept-v1-0-until", "2026-12-01T00:00:00+01:00"])
    assert isinstance(result.exception, Recorded), result.output
    assert seen["accept_v1_0_until"] == datetime(2026, 11, 30, 23, tzinfo=UTC)
