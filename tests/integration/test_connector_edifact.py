"""edifact against the real broker: the shipped samples raise exactly the expected alerts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from bus.adapters.kafka import text_headers
from bus.adapters.keystore import generate_keypair
from bus.core.sealing import unseal
from connectors.edifact.connector import EdifactConnector
from connectors.sdk.testing import running, settings_for
from tests.helpers import CODES, SCHEMAS, keyring_for, read_all, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "edifact" / "samples"
TOPIC = "alerts.suspicious-container"


def alerts_of(kafka, member: str, signer) -> list:
    source = f"urn:epa:member:{member}".encode()
    return [unseal(r.key, r.value, text_headers(r.headers), keyring_for(signer), SCHEMAS, CODES).alert
            for r in read_all(kafka, TOPIC) if dict(r.headers).get(b"ce_source") == source]


def test_samples_raise_the_expected_alerts_across_files(kafka, tmp_path, unique):
    member = f"ED-{unique.upper()}"
    key, _, signer = generate_keypair(member, tmp_path / "keys")
    inbox = tmp_path / "edi"
    settings = settings_for(EdifactConnector, tmp_path / "edifact.yaml", {
        "member": member, "key_file": str(key), "kafka": {"bootstrap": kafka.bootstrap},
        "health": {"host": "127.0.0.1", "port": 0}, "publish": {"create_topics": True},
        "edifact": {
            "inbox": str(inbox), "settle_s": 0, "poll_interval_s": 0.1,
            "rules": {"watchlisted_port_of_loading": {"ports": ["ECGYE", "COCTG", "BRSSZ"]}},
            "alert_header": {"tlp": "AMBER", "handling_codes": ["H1"], "source_reliability": "B",
                             "information_assessment": "2", "countries": ["NL"]},
        },
    })
    inbox.mkdir()
    with running(EdifactConnector, settings) as runtime:
        for sample in sorted(SAMPLES.glob("*.edi")):  # one at a time: the order is the story
            shutil.copy(sample, inbox / f".{sample.name}.tmp")
            (inbox / f".{sample.name}.tmp").rename(inbox / sample.name)
            wait_for(lambda s=sample: (inbox / "done" / s.name).exists(), what=f"{sample.name} done")
        (inbox / "broken.edi").write_text("UNB+UNOC:3+A+B+261120:0800+X'UNH+1+CODECO:D:95B:UN'BGM+34'")
        wait_for(lambda: (inbox / "failed" / "broken.edi").exists(), what="broken file failed")
        shutil.copy(SAMPLES / "01-codeco-gate-in.edi", inbox / "resent.edi")  # same interchange again
        wait_for(lambda: not (inbox / "resent.edi").exists(), what="resent file handled")
        health = "http://{}:{}".format(*runtime.health_address)
        ready = httpx.get(f"{health}/readyz").json()
        metrics = httpx.get(f"{health}/metrics").text

    alerts = alerts_of(kafka, member, signer)
    summary = [(a.container_number, sorted(i.value for i in a.risk_indicators)) for a in alerts]
    assert sorted(summary) == sorted([
        ("CSQU3054383", ["high-risk-origin"]),
        ("HLXU8765430", ["high-risk-origin"]),
        ("CSQU3054383", ["rip-on-rip-off", "seal-tampering"]),
    ])
    gate_out = next(a for a in alerts if "seal-tampering" in {i.value for i in a.risk_indicators})
    assert gate_out.seal_numbers == ["EC9990001"] and gate_out.header.producer == member
    assert gate_out.header.tlp.value == "AMBER" and gate_out.header.countries == ["NL"]
    assert "EC4471920" in gate_out.header.summary and gate_out.header.expires is not None
    first = next(a for a in alerts if a.container_number == "HLXU8765430")
    assert first.vessel_imo == "9074729" and first.port_of_loading == "COCTG"

    state = json.loads((inbox / ".state" / "containers.json").read_text())
    assert state["containers"]["CSQU3054383"]["seals"] == ["EC9990001"]
    assert len(state["applied"]) == 3
    assert "not a valid UN/EDIFACT interchange" in (inbox / "failed" / "broken.edi.errors.txt").read_text()
    assert len(list((inbox / "done").glob("resent*.edi"))) == 1
    assert ready["status"] == "ok" and ready["kafka"] == "ok"
    assert 'bus_connector_published_total{alert_type="suspicious-container",connector="edifact"} 3.0' in metrics
