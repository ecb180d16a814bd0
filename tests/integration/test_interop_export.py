"""`bus stix export` and `bus misp export` reading a topic range from a real broker, verified like `bus tail`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stix2validator import ValidationOptions, validate_instance

from bus.adapters.keystore import generate_keypair
from bus.cli.stix import SCHEMA_DIR
from bus.interop.stix import ALERT_EXTENSION_ID
from tests.helpers import run_bus


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trusted key folder with NL-CUSTOMS, and an untrusted BE-FEDPOL key elsewhere."""
    trusted, untrusted = tmp_path_factory.mktemp("trusted"), tmp_path_factory.mktemp("untrusted")
    generate_keypair("NL-CUSTOMS", trusted)
    generate_keypair("BE-FEDPOL", untrusted)
    return trusted, untrusted


def publish(kafka, member: str, key: Path, file: str) -> list[dict]:  # type: ignore[no-untyped-def]
    # in clear: these tests are about export, and the examples include H2 alerts (encrypted by default)
    result = run_bus("publish", "--file", file, "--member", member, "--key", str(key), "--json", "--no-encrypt",
                     settings=kafka, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_stix_export_of_a_topic_range_exports_verified_alerts_only(kafka, keys, tmp_path):  # type: ignore[no-untyped-def]
    trusted, untrusted = keys
    since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    mine = publish(kafka, "NL-CUSTOMS", trusted / "NL-CUSTOMS.key", "examples/alerts/batch.jsonl")
    forged = publish(kafka, "BE-FEDPOL", untrusted / "BE-FEDPOL.key", "examples/alerts/batch.jsonl")
    out = tmp_path / "bundle.json"
    result = run_bus("stix", "export", "--topic", "alerts.suspicious-container", "--keys", str(trusted),
                     "--since", since, "--out", str(out), settings=kafka, check=True)
    bundle = json.loads(out.read_text())
    exported = {o["extensions"][ALERT_EXTENSION_ID]["message_id"] for o in bundle["objects"]
                if o["type"] == "grouping"}
    assert {r["message_id"] for r in mine} <= exported
    assert not {r["message_id"] for r in forged} & exported
    assert result.stderr.count("failed verification (unknown-key") >= len(forged)
    options = ValidationOptions(schema_dir=str(SCHEMA_DIR), version="2.1", disabled=["uuid-check"])
    verdict = validate_instance(bundle, options)
    assert verdict.is_valid, [str(e) for e in verdict.errors]


def test_misp_export_of_a_topic_range(kafka, keys, tmp_path):  # type: ignore[no-untyped-def]
    trusted, _ = keys
    since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    [receipt] = publish(kafka, "NL-CUSTOMS", trusted / "NL-CUSTOMS.key", "examples/alerts/operation-notice.json")
    feed = tmp_path / "feed"
    run_bus("misp", "export", "--topic", "alerts.operation-notice", "--keys", str(trusted), "--since", since,
            "--out", str(feed), settings=kafka, check=True)
    manifest = json.loads((feed / "manifest.json").read_text())
    assert receipt["message_id"] in manifest
    assert "tlp:amber+strict" in {t["name"] for t in manifest[receipt["message_id"]]["Tag"]}
