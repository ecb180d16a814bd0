"""`bus stix export`, `bus misp export`, `bus stix schemas` on files (the Kafka path is an integration test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stix2
from typer.testing import CliRunner

from bus.cli import app
from bus.core.models import BaseAlert
from tests.alert_strategies import EXAMPLES as EXAMPLE_DIR
from tests.alert_strategies import example_bodies, recorded

runner = CliRunner()
ALERTS = [recorded(body, index=i) for i, body in enumerate(example_bodies()[:3])]


def tail_line(alert: BaseAlert, offset: int) -> str:
    """A line as `bus tail --json` prints it for a verified record."""
    return json.dumps({"topic": "feed.europol", "partition": 0, "offset": offset, "key": "k", "verified": True,
                       "key_id": "kid", "alert": alert.model_dump(mode="json")})


@pytest.fixture
def tail_file(tmp_path: Path) -> Path:
    path = tmp_path / "feed.jsonl"
    lines = [tail_line(a, i) for i, a in enumerate(ALERTS)]
    lines.insert(1, json.dumps({"topic": "feed.europol", "partition": 0, "offset": 7, "key": "k",
                                "verified": False, "reason": "bad-signature", "error": "signature does not verify"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stix_export_of_tail_output_skips_unverified_records_and_says_so(tail_file: Path) -> None:
    r = runner.invoke(app, ["stix", "export", str(tail_file)])
    assert r.exit_code == 0, r.output
    bundle = stix2.parse(r.stdout, allow_custom=False)
    exported = {o.extensions[stix_ext()]["message_id"] for o in bundle.objects if o.type in ("grouping", "report")}
    assert exported == {str(a.header.message_id) for a in ALERTS}
    assert "feed.europol[0]@7 failed verification (bad-signature)" in r.stderr
    assert "exported 3 alert(s)" in r.stderr


def stix_ext() -> str:
    from bus.interop.stix import ALERT_EXTENSION_ID

    return ALERT_EXTENSION_ID


def test_stix_export_twice_writes_the_same_file(tail_file: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    for out in (first, second):
        r = runner.invoke(app, ["stix", "export", str(tail_file), "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(first.read_text())["type"] == "bundle"


def test_type_filter(tail_file: Path) -> None:
    r = runner.invoke(app, ["stix", "export", str(tail_file), "--type", "operation-notice"])
    assert r.exit_code == 0, r.output
    types = {o["type"] for o in json.loads(r.stdout)["objects"]}
    assert "report" in types and "grouping" not in types


def test_alerts_never_recorded_on_the_bus_are_refused_naming_the_fields() -> None:
    r = runner.invoke(app, ["stix", "export", str(EXAMPLE_DIR / "suspicious-container.json")])
    assert r.exit_code == 2
    for field in ("header.message_id", "header.producer", "header.created"):
        assert f"{field}: required for export" in r.stderr
    assert r.stdout == ""


def test_a_file_and_a_topic_range_do_not_mix(tail_file: Path) -> None:
    r = runner.invoke(app, ["stix", "export", str(tail_file), "--since", "2026-11-01T00:00:00"])
    assert r.exit_code == 2 and "--since and --until" in r.stderr
    r = runner.invoke(app, ["stix", "export"])
    assert r.exit_code == 2 and "either a file of alerts or --topic" in r.stderr


def test_misp_export_writes_a_feed_folder(tail_file: Path, tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    r = runner.invoke(app, ["misp", "export", str(tail_file), "--out", str(feed)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((feed / "manifest.json").read_text())
    assert set(manifest) == {str(a.header.message_id) for a in ALERTS}
    assert "the manifest lists 3" in r.stderr


def test_stix_schemas_check(tmp_path: Path) -> None:
    r = runner.invoke(app, ["stix", "schemas", "--check"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["stix", "schemas", "--check", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "stale" in r.stderr
    r = runner.invoke(app, ["stix", "schemas", "--out", str(tmp_path)])
    assert r.exit_code == 0
    assert runner.invoke(app, ["stix", "schemas", "--check", "--out", str(tmp_path)]).exit_code == 0
