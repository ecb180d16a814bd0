"""What the inbox pipeline tells an operator about a file it does not publish (no Kafka needed)."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from connectors.edifact.config import EdifactInbox
from connectors.edifact.handler import EdifactHandler
from connectors.edifact.state import StateStore
from connectors.sdk.config import PublishSettings
from connectors.sdk.inbox import FileInfo, InboxPipeline, Outcome
from connectors.sdk.inbox.checkpoint import Checkpoint
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher
from connectors.sdk.runtime import Services

SAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "edifact" / "samples"
MEMBER = "PORT-ROTTERDAM"
GATE_IN = (SAMPLES / "01-codeco-gate-in.edi").read_text(encoding="iso8859-1")


def edifact_pipeline(inbox: Path) -> tuple[InboxPipeline, EdifactHandler]:
    """The EDIFACT pipeline on a broker nobody listens on: these paths never reach Kafka."""
    settings = EdifactInbox.model_validate({
        "inbox": str(inbox), "settle_s": 0,
        "rules": {"watchlisted_port_of_loading": {"ports": ["ECGYE", "COCTG"]}}})
    signer = SigningKey.generate(MEMBER)
    metrics = ConnectorMetrics("edifact")
    stop = threading.Event()
    publisher = ReliablePublisher(Bus(KafkaSettings(bootstrap="127.0.0.1:1")), signer, PublishSettings(), metrics, stop)
    services = Services("edifact", None, signer, publisher, metrics, stop, structlog.get_logger("connector"))
    handler = EdifactHandler(settings, MEMBER, StateStore(settings.state_path))
    pipeline = InboxPipeline(settings, handler, services)
    pipeline.prepare()
    return pipeline, handler


def drop(inbox: Path, name: str, text: str) -> Path:
    path = inbox / name
    path.write_text(text, encoding="iso8859-1")
    os.utime(path, (0, 0))  # long settled
    return path


def report(moved: Path) -> str:
    return moved.with_name(moved.name + ".errors.txt").read_text()


def test_an_edifact_rejection_counts_alerts_and_says_how_many_containers_were_read(tmp_path):
    """Three containers, two with findings, one of those with a bad container number."""
    pipeline, _ = edifact_pipeline(tmp_path)
    drop(tmp_path, "gate-in.edi", GATE_IN.replace("CSQU3054383", "CSQU3054384"))  # check digit broken
    [result] = pipeline.run_once()
    assert result.outcome is Outcome.FAILED and result.invalid == 1
    text = report(result.moved_to)
    assert ("result: rejected: 1 of 2 alerts invalid (3 containers read, 2 with findings); nothing published"
            in text)
    assert "message 1 (CODECO ECT-GI-20261120-01), container 1 CSQU3054384: container_number:" in text


def mark_published(handler: EdifactHandler, path: Path) -> FileInfo:
    """As if the file had been read, published and its container state committed."""
    info = FileInfo(path, hashlib.sha256(path.read_bytes()).hexdigest(),
                    datetime.fromtimestamp(path.stat().st_mtime, UTC), datetime.now(UTC))
    handler.read(info)
    handler.completed(info)
    return info


@pytest.mark.parametrize("after_a_crash", [False, True])
def test_a_duplicate_is_not_called_a_crash_and_a_crash_is_not_called_a_duplicate(tmp_path, after_a_crash):
    pipeline, handler = edifact_pipeline(tmp_path)
    first = drop(tmp_path, "gate-in.edi", GATE_IN)
    info = mark_published(handler, first)
    if after_a_crash:  # stopped after committing the state, before moving the file
        pipeline.checkpoints.save(Checkpoint(first.name, info.sha256, info.created.isoformat(), 2, acked=2))
    else:  # moved as usual; then the port community system sends the same interchange again
        first.rename(tmp_path / "done-earlier.edi.bak")
        drop(tmp_path, "resent.edi", GATE_IN)

    with capture_logs() as logs:
        pipeline.services.log = structlog.get_logger("connector")
        [result] = pipeline.run_once()

    assert result.outcome is Outcome.DONE and result.published == 0
    events = [e["event"] for e in logs]
    handled = next(e for e in logs if e["event"] == "file handled")
    if after_a_crash:
        assert "file was completed before a crash; moving it" in events
        assert handled["result"] == "already published before a restart"
    else:
        assert "file is identical to one already published; nothing published again" in events
        assert not any("crash" in e for e in events)
        assert handled["result"] == "duplicate of a file already published; nothing published"
