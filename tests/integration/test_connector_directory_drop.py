"""directory-drop against the real broker: good and malformed files, crashes, no loss, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bus.adapters.keystore import generate_keypair
from bus.composition import Bus
from connectors.directory_drop.config import DropSettings
from connectors.directory_drop.connector import DirectoryDropConnector
from connectors.directory_drop.handler import DropHandler
from connectors.sdk.inbox import FileInfo
from connectors.sdk.inbox.checkpoint import Checkpoint, CheckpointStore
from connectors.sdk.inbox.published import end_offsets
from connectors.sdk.testing import running, settings_for, write_config
from tests.helpers import EXAMPLES, REPO, read_all, wait_for

TOPIC = "alerts.suspicious-container"


def member_for(unique: str) -> str:
    return f"DD-{unique.upper()}"


def ids_on_topic(kafka, member: str) -> list[str]:
    source = f"urn:epa:member:{member}".encode()
    return [dict(r.headers)[b"ce_id"].decode() for r in read_all(kafka, TOPIC)
            if dict(r.headers).get(b"ce_source") == source]


def alert_line(summary: str | None = None, **changes) -> str:
    data = json.loads((EXAMPLES / "suspicious-container.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("producer", "alert_type")}
    if summary:
        data["header"]["summary"] = summary
    data.update(changes)
    return json.dumps(data)


def drop(inbox: Path, name: str, text: str) -> Path:
    """Write then rename, as the operator guide tells source systems to."""
    tmp = inbox / f"{name}.tmp"
    tmp.write_text(text)
    return tmp.rename(inbox / name)


def config(tmp_path: Path, kafka, member: str, **drop_settings) -> dict:
    key, _, _ = generate_keypair(member, tmp_path / "keys", overwrite=True)
    return {
        "member": member, "key_file": str(key), "kafka": {"bootstrap": kafka.bootstrap},
        "health": {"host": "127.0.0.1", "port": 0}, "log_level": "INFO",
        "publish": {"create_topics": True, "connect_timeout_s": 2, "ack_timeout_s": 10,
                    "retry": {"attempts": 3, "initial_backoff_s": 0.1, "max_backoff_s": 0.5}},
        "directory_drop": {
            "inbox": str(tmp_path / "inbox"), "settle_s": 0, "poll_interval_s": 0.1, "batch_size": 2,
            "alert_type": "suspicious-container",
            "csv": {"columns": {"Container": "container_number", "Seals": {"field": "seal_numbers", "list": True},
                                "Summary": "header.summary"}},
            "defaults": {"header": {"tlp": "AMBER", "source_reliability": "B", "information_assessment": "3"}},
            **drop_settings,
        },
    }


def test_good_files_are_published_and_malformed_ones_rejected_with_a_report(kafka, tmp_path, unique):
    member = member_for(unique)
    settings = settings_for(DirectoryDropConnector, tmp_path / "dd.yaml", config(tmp_path, kafka, member))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running(DirectoryDropConnector, settings) as runtime:
        drop(inbox, "good.jsonl", "\n".join(alert_line() for _ in range(3)) + "\n")
        drop(inbox, "good.csv", "Container,Seals,Summary\nCSQU3054383,S1;S2,First row\nMSKU9070323,,Second\n")
        drop(inbox, "broken.json", '{"header": {')
        drop(inbox, "mixed.jsonl", alert_line() + "\n" + alert_line(container_number="CSQU3054384") + "\n")
        drop(inbox, "notes.txt", "not an alert file: left alone")
        wait_for(lambda: not any(inbox.glob("*.json*")) and not any(inbox.glob("*.csv")), what="inbox drained")
        metrics = httpx.get("http://{}:{}/metrics".format(*runtime.health_address)).text

    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["good.csv", "good.jsonl"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == [
        "broken.json", "broken.json.errors.txt", "mixed.jsonl", "mixed.jsonl.errors.txt"]
    assert (inbox / "notes.txt").exists()
    mixed = (inbox / "failed" / "mixed.jsonl.errors.txt").read_text()
    assert "nothing published" in mixed and "line 2: container_number:" in mixed and "line 1" not in mixed
    assert "invalid JSON" in (inbox / "failed" / "broken.json.errors.txt").read_text()

    ids = ids_on_topic(kafka, member)
    assert len(ids) == 5 and len(set(ids)) == 5
    assert not list((inbox / ".state").iterdir())  # no checkpoint left behind
    assert 'bus_connector_files_total{connector="directory-drop",outcome="done"} 2.0' in metrics
    assert 'bus_connector_files_total{connector="directory-drop",outcome="failed"} 2.0' in metrics
    assert 'bus_connector_rejected_total{connector="directory-drop",reason="invalid-alert"} 1.0' in metrics


def test_skip_mode_publishes_the_valid_rows_and_reports_the_rest(kafka, tmp_path, unique):
    member = member_for(unique)
    settings = settings_for(DirectoryDropConnector, tmp_path / "dd.yaml",
                            config(tmp_path, kafka, member, invalid_rows="skip"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running(DirectoryDropConnector, settings):
        drop(inbox, "mixed.jsonl", "\n".join([alert_line(), alert_line(container_number="X"), alert_line()]))
        wait_for(lambda: (inbox / "failed" / "mixed.jsonl").exists(), what="file handled")
    report = (inbox / "failed" / "mixed.jsonl.errors.txt").read_text()
    assert "partially published: 2 alerts published, 1 invalid ones skipped" in report
    assert "line 2: container_number" in report
    assert len(ids_on_topic(kafka, member)) == 2


def test_resume_skips_alerts_acknowledged_after_the_last_checkpoint(kafka, tmp_path, unique):
    """The crash window between Kafka's ack and the checkpoint write: no duplicate either."""
    member = member_for(unique)
    data = config(tmp_path, kafka, member)
    settings = settings_for(DirectoryDropConnector, tmp_path / "dd.yaml", data)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "crashed.jsonl"
    path.write_text("\n".join(alert_line() for _ in range(6)) + "\n")
    created = datetime.now(UTC)
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    file_info = FileInfo(path, sha, datetime.fromtimestamp(path.stat().st_mtime, UTC), created)
    alerts = [r.alert for r in DropHandler(DropSettings(**data["directory_drop"]), member).read(file_info)]
    from bus.adapters.keystore import load_signing_key

    signer = load_signing_key(Path(data["key_file"]), member)
    bus = Bus(kafka)
    with bus.publisher(signer, create_topics=True) as publisher:
        publisher.publish_many(alerts[:2])  # batch 1: acknowledged and checkpointed
        scan_from = end_offsets(bus.engine, [TOPIC])
        publisher.publish_many(alerts[2:4])  # batch 2: acknowledged, then the crash
    CheckpointStore(inbox / ".state").save(
        Checkpoint(path.name, sha, created.isoformat(), total=6, acked=2, scan_from=scan_from))

    with running(DirectoryDropConnector, settings):
        wait_for(lambda: (inbox / "done" / "crashed.jsonl").exists(), what="file done")
    ids = Counter(ids_on_topic(kafka, member))
    assert set(ids) == {str(a.header.message_id) for a in alerts}
    assert set(ids.values()) == {1}


def run_connector(config_path: Path, log: Path, kafka) -> subprocess.Popen:
    env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "bus", "connector", "run", "directory-drop",
                             "--config", str(config_path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def acked(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text())["acked"])
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_mid_file_then_restart_loses_nothing_and_duplicates_nothing(kafka, tmp_path, unique):
    member = member_for(unique)
    config_path = write_config(tmp_path / "dd.yaml", config(tmp_path, kafka, member, batch_size=10, throttle_s=0.05))
    inbox, log = tmp_path / "inbox", tmp_path / "connector.log"
    inbox.mkdir()
    lines = [alert_line(summary=f"Alert {i} of a large export") for i in range(300)]
    big = drop(inbox, "big.jsonl", "\n".join(lines) + "\n")
    checkpoint = inbox / ".state" / "big.jsonl.checkpoint.json"
    processes = []
    try:
        first = run_connector(config_path, log, kafka)
        processes.append(first)
        wait_for(lambda: acked(checkpoint) >= 50, what="progress before the kill")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        progress = acked(checkpoint)
        assert 50 <= progress < 300 and big.exists(), "killed mid-file"

        second = run_connector(config_path, log, kafka)  # graceful stop mid-file, too
        processes.append(second)
        wait_for(lambda: acked(checkpoint) >= progress + 50, what="progress after restart")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        assert big.exists() and acked(checkpoint) < 300

        third = run_connector(config_path, log, kafka)
        processes.append(third)
        wait_for(lambda: (inbox / "done" / "big.jsonl").exists(), timeout=60, what="file done")
        third.send_signal(signal.SIGTERM)
        assert third.wait(20) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    ids = Counter(ids_on_topic(kafka, member))
    assert len(ids) == 300, f"lost {300 - len(ids)} alerts"
    assert max(ids.values()) == 1, f"duplicates: {[i for i, n in ids.items() if n > 1][:5]}"
    text = log.read_text()
    assert "resuming file" in text and '"event": "connector stopped"' in text
    assert not checkpoint.exists()
