"""EDIFACT parsing and rules, on the shipped samples and on edge cases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.errors import ConnectorConfigError
from connectors.edifact.config import EdifactInbox, RulesSettings
from connectors.edifact.handler import EdifactHandler
from connectors.edifact.parse import parse_interchange
from connectors.edifact.rules import apply
from connectors.edifact.state import StateStore
from connectors.sdk.inbox import FileInfo, FileRejected  # the SDK's public name

SAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "edifact" / "samples"
WATCHLIST = ["ECGYE", "COCTG"]


def events(name: str):
    return parse_interchange((SAMPLES / name).read_text(encoding="iso8859-1"))


def test_codeco_gate_in_is_read_with_header_and_equipment_data():
    first, second, third = events("01-codeco-gate-in.edi")
    assert (first.event, first.container, first.place, first.terminal) == (
        "gate-in", "CSQU3054383", "NLRTM", "ECT Delta")
    assert (first.port_of_loading, first.port_of_discharge, first.seals) == ("ECGYE", "NLRTM", ("EC4471920",))
    assert first.time == datetime(2026, 11, 20, 8, 5, tzinfo=UTC)
    assert (first.vessel_name, first.vessel_imo, first.voyage) == ("ATLANTIC MERIDIAN", "9074729", "612N")
    assert first.references["BM"] == ("EPAGYE2611004",) and first.full is True
    assert first.key == "1:1" and third.key == "1:3"
    assert second.port_of_loading == "COCTG" and third.seals == ("CN88120",)


def test_coreor_is_a_release_and_gate_out_knows_empties():
    [release] = events("02-coreor-release.edi")
    assert (release.event, release.container, release.references["RE"]) == (
        "release", "MSKU9070323", ("NLCUS-REL-884120",))
    gate_out = events("03-codeco-gate-out.edi")
    assert [e.event for e in gate_out] == ["gate-out"] * 4
    assert gate_out[-1].full is False and gate_out[2].references["RE"] == ("NLCUS-REL-884377",)


def test_coarri_discharge_codes_are_configurable():
    text = ("UNB+UNOC:3+A+B+261120:0800+X'UNH+1+COARRI:D:95B:UN'BGM+98+D1+9'"
            "EQD+CN+CSQU3054383+45R1:102:5++2+5'LOC+9+ECGYE:139:6'UNT+5+1'UNZ+1+X'")
    assert parse_interchange(text)[0].event == "status"
    [event] = parse_interchange(text, {"COARRI": {"98": "discharge"}})
    assert event.event == "discharge" and event.port_of_loading == "ECGYE"


@pytest.mark.parametrize("text", ["", "hello world", '{"json": true}',
                                  "UNB+UNOC:3+A+B+261120:0800+X'UNH+1+CODECO:D:95B:UN'BGM+34'UNZ+1+X'"])
def test_malformed_interchanges_are_rejected(text):
    with pytest.raises(FileRejected, match="EDIFACT"):
        parse_interchange(text)


def test_rules_across_the_three_sample_files():
    rules = RulesSettings.model_validate({"watchlisted_port_of_loading": {"ports": WATCHLIST}})
    state: dict = {}
    raised = []
    for name in ("01-codeco-gate-in.edi", "02-coreor-release.edi", "03-codeco-gate-out.edi"):
        for event in events(name):
            findings, state[event.container] = apply(event, state.get(event.container), rules)
            if findings:
                raised.append((event.event, event.container, sorted(f.rule for f in findings)))
    assert raised == [
        ("gate-in", "CSQU3054383", ["watchlisted_port_of_loading"]),
        ("gate-in", "HLXU8765430", ["watchlisted_port_of_loading"]),
        ("gate-out", "CSQU3054383", ["gate_out_without_release", "seal_changed"]),
    ]
    assert state["CSQU3054383"].seals == ["EC9990001"] and not state["CSQU3054383"].released


def test_rules_can_be_switched_off():
    rules = RulesSettings.model_validate({
        "watchlisted_port_of_loading": {"ports": WATCHLIST, "enabled": False},
        "seal_changed": {"enabled": False}, "gate_out_without_release": {"enabled": False}})
    state: dict = {}
    for name in ("01-codeco-gate-in.edi", "03-codeco-gate-out.edi"):
        for event in events(name):
            findings, state[event.container] = apply(event, state.get(event.container), rules)
            assert findings == []


def file_info(path: Path) -> FileInfo:
    return FileInfo(path, hashlib.sha256(path.read_bytes()).hexdigest(),
                    datetime.fromtimestamp(path.stat().st_mtime, UTC), datetime.now(UTC))


def test_handler_commits_state_only_when_told_and_remembers_applied_files(tmp_path):
    settings = EdifactInbox.model_validate({
        "inbox": str(tmp_path), "rules": {"watchlisted_port_of_loading": {"ports": WATCHLIST}}})
    store = StateStore(settings.state_path)
    handler = EdifactHandler(settings, "PORT-ROTTERDAM", store)
    gate_in = file_info(SAMPLES / "01-codeco-gate-in.edi")
    rows = handler.read(gate_in)
    assert [r.alert.container_number for r in rows] == ["CSQU3054383", "HLXU8765430"]
    assert rows[0].alert.header.producer == "PORT-ROTTERDAM"
    assert [i.value for i in rows[0].alert.risk_indicators] == ["high-risk-origin"]
    assert "loaded at watch-listed port ECGYE" in rows[0].alert.header.summary
    assert set(rows[0].alert.header.ports) == {"NLRTM", "ECGYE"}
    assert store.containers == {}  # nothing committed before Kafka acknowledged
    assert [r.alert.header.message_id for r in handler.read(gate_in)] == [r.alert.header.message_id for r in rows]

    handler.completed(gate_in)
    assert handler.already_applied(gate_in)
    reloaded = StateStore(settings.state_path)
    assert reloaded.containers["CSQU3054383"].seals == ["EC4471920"] and reloaded.is_applied(gate_in.sha256)

    handler = EdifactHandler(settings, "PORT-ROTTERDAM", reloaded)
    gate_out = file_info(SAMPLES / "03-codeco-gate-out.edi")
    without_release = [r.alert.container_number for r in handler.read(gate_out)]
    assert without_release == ["CSQU3054383", "MSKU9070323"]  # the COREOR was not read yet
    release = file_info(SAMPLES / "02-coreor-release.edi")
    assert handler.read(release) == []
    handler.completed(release)
    [alert] = [r.alert for r in handler.read(gate_out)]
    assert [i.value for i in alert.risk_indicators] == ["seal-tampering", "rip-on-rip-off"]
    assert alert.seal_numbers == ["EC9990001"] and "EC4471920" in alert.header.summary


def test_a_corrupt_state_file_stops_the_connector(tmp_path):
    path = tmp_path / "containers.json"
    path.write_text("{half")
    with pytest.raises(ConnectorConfigError, match="state file is unreadable"):
        StateStore(path)
