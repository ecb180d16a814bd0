"""One file from the inbox to Kafka: read, validate, publish in batches, move.

Order of durable steps, each safe to crash after:
1. checkpoint created (nothing published yet; records the topics' end offsets);
2. per batch: Kafka acknowledges, then the checkpoint advances;
3. the handler commits derived state (EDIFACT container history);
4. the report is written, the file is moved, the checkpoint deleted.
A restart finds the checkpoint, recomputes the same rows (stable ids), skips
the acknowledged ones and any later ones already on the topic, and goes on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from bus.core.models import BaseAlert
from bus.core.sealing import alert_topic
from bus.errors import FileRejected, KafkaError, NotAuthorized, PublishError
from connectors.sdk.inbox import outcome as files
from connectors.sdk.inbox.checkpoint import Checkpoint, CheckpointStore
from connectors.sdk.inbox.handler import FileHandler, FileInfo
from connectors.sdk.inbox.published import end_offsets, published_ids
from connectors.sdk.inbox.settings import InboxSettings
from connectors.sdk.runtime import Services

IGNORED_PREFIXES = (".", "~")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".swp", files.REPORT_SUFFIX)


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    DEFERRED = "deferred"  # Kafka unavailable or shutting down: the file stays, progress is kept


@dataclass
class Result:
    outcome: Outcome
    published: int = 0
    already_published: int = 0
    invalid: int = 0
    moved_to: Path | None = None


class InboxPipeline:
    def __init__(self, settings: InboxSettings, handler: FileHandler, services: Services) -> None:
        self.settings = settings
        self.handler = handler
        self.services = services
        self.log = services.log
        self.checkpoints = CheckpointStore(settings.state)
        self._files = services.metrics.counter("bus_connector_files", "Inbox files handled, by outcome.",
                                               ["outcome"])

    # --- the folder -----------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folders and forget checkpoints of files that are gone (moved before the crash)."""
        for folder in (self.settings.inbox, self.settings.done, self.settings.failed, self.settings.state):
            folder.mkdir(parents=True, exist_ok=True)
        for name in self.checkpoints.names():
            if not (self.settings.inbox / name).exists():
                self.log.info("dropping checkpoint of a file no longer in the inbox", file=name)
                self.checkpoints.delete(name)

    def pending(self, now: float | None = None) -> list[Path]:
        """Files ready to handle, oldest first (order matters for stateful handlers)."""
        now = now if now is not None else datetime.now(UTC).timestamp()
        ready = []
        for path in self.settings.inbox.iterdir():
            name = path.name
            if name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES):
                continue
            if path.suffix.lower() not in self.handler.suffixes:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file() and now - stat.st_mtime >= self.settings.settle_s:
                ready.append((stat.st_mtime, name, path))
        return [p for _, _, p in sorted(ready)]

    def run_once(self) -> list[Result]:
        """Handle what is pending; stop at the first deferred file so files stay in order."""
        results = []
        for path in self.pending():
            if self.services.stop.is_set():
                break
            result = self.process(path)
            results.append(result)
            if result.outcome is Outcome.DEFERRED:
                break
        return results

    # --- one file -------------------------------------------------------------------

    def process(self, path: Path) -> Result:
        try:
            content = path.read_bytes()
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            return Result(Outcome.DEFERRED)
        sha = hashlib.sha256(content).hexdigest()
        checkpoint = self.checkpoints.load(path.name)
        if checkpoint is not None and checkpoint.sha256 != sha:
            self.log.warning("file changed since its checkpoint; starting it over", file=path.name)
            self.checkpoints.delete(path.name)
            checkpoint = None
        created = checkpoint.created_at if checkpoint else datetime.now(UTC)
        info = FileInfo(path, sha, mtime, created)
        log = self.log.bind(file=path.name, sha256=sha[:12])

        if self.handler.already_applied(info):
            if checkpoint is not None:  # it was being published when the process stopped
                log.info("file was completed before a crash; moving it")
                return self._finish(info, Outcome.DONE, "already published before a restart", [])
            log.info("file is identical to one already published; nothing published again")
            return self._finish(info, Outcome.DONE, "duplicate of a file already published; nothing published", [])
        try:
            rows = self.handler.read(info)
        except FileRejected as exc:
            self.services.metrics.rejected_inc("invalid-file")
            return self._finish(info, Outcome.FAILED, "rejected: the file cannot be read; nothing published",
                                exc.problems)
        for row in rows:
            if row.alert is not None and not row.problems:
                row.problems = self.services.publisher.sealing_problems(row.alert)
        valid = [r.alert for r in rows if r.alert is not None and not r.problems]
        invalid = [r for r in rows if r.alert is None or r.problems]
        problems = [f"{r.where}: {p}" for r in invalid for p in r.problems]
        if invalid:
            self.services.metrics.rejected_inc("invalid-alert", len(invalid))
        held = self.handler.describe(info, rows)
        held = f" ({held})" if held else ""
        if invalid and (self.settings.invalid_rows == "reject-file" or not valid):
            verdict = f"rejected: {len(invalid)} of {len(rows)} alerts invalid{held}; nothing published"
            result = self._finish(info, Outcome.FAILED, verdict, problems)
            result.invalid = len(invalid)
            return result

        result = self._publish(info, valid, checkpoint, log)
        if result.outcome is Outcome.DEFERRED:
            return result
        self.handler.completed(info)
        if invalid:
            verdict = (f"partially published: {len(valid)} alerts published, "
                       f"{len(invalid)} invalid ones skipped{held}")
            final = self._finish(info, Outcome.FAILED, verdict, problems)
        else:
            final = self._finish(info, Outcome.DONE, f"published {len(valid)} alert(s){held}", [])
        final.published, final.already_published, final.invalid = (
            result.published, result.already_published, len(invalid))
        return final

    def _publish(self, info: FileInfo, alerts: list[BaseAlert], checkpoint: Checkpoint | None,
                 log: object) -> Result:
        engine = self.services.publisher.bus.engine
        timeout = self.services.settings.publish.connect_timeout_s
        topics = sorted({alert_topic(str(a.alert_type)) for a in alerts})
        already: set[str] = set()
        try:
            if checkpoint is None:
                self.services.publisher.check()  # creates topics if configured, before offsets
                checkpoint = Checkpoint(info.path.name, info.sha256, info.created.isoformat(), len(alerts),
                                        scan_from=end_offsets(engine, topics, timeout))
                self.checkpoints.save(checkpoint)
            else:
                already = self._already_published(info, alerts, checkpoint, topics)
        except KafkaError as exc:
            self.services.metrics.kafka_error("offsets")
            self.services.log.warning("kafka unavailable; file deferred", file=info.path.name, error=str(exc))
            return Result(Outcome.DEFERRED)

        result = Result(Outcome.DONE)
        size = self.settings.batch_size
        for start in range(checkpoint.acked, len(alerts), size):
            chunk = alerts[start:start + size]
            to_send = [a for a in chunk if str(a.header.message_id) not in already]
            try:
                receipts = self.services.publisher.publish(to_send)
            except PublishError as exc:
                self.services.log.warning("file deferred", file=info.path.name, acked=checkpoint.acked,
                                          error=str(exc))
                result.outcome = Outcome.DEFERRED
                return result
            checkpoint.advance(len(chunk), [(r.topic, r.partition, r.offset) for r in receipts])
            self.checkpoints.save(checkpoint)
            result.published += len(to_send)
            result.already_published += len(chunk) - len(to_send)
            self.services.beat()
            if checkpoint.acked < len(alerts):
                if self.services.stop.is_set():
                    result.outcome = Outcome.DEFERRED
                    return result
                if self.settings.throttle_s:
                    self.services.stop.wait(self.settings.throttle_s)
        return result

    def _already_published(self, info: FileInfo, alerts: list[BaseAlert], checkpoint: Checkpoint,
                            topics: list[str]) -> set[str]:
        """Ids past the checkpoint that reached Kafka anyway (crash between ack and checkpoint)."""
        engine = self.services.publisher.bus.engine
        wanted = {str(a.header.message_id) for a in alerts[checkpoint.acked:]}
        try:
            already = published_ids(engine, checkpoint.scan_from, topics, wanted,
                                    self.services.settings.publish.connect_timeout_s)
        except NotAuthorized as exc:
            # Members may WRITE but not READ the shared alert topics. At most the batch in
            # flight at the crash is re-sent; its stable ids make the router drop it as a replay.
            self.services.log.warning("cannot read the alert topics to confirm the last batch; "
                                      "resuming from the checkpoint", file=info.path.name, error=str(exc))
            return set()
        self.services.log.info("resuming file", file=info.path.name, acked=checkpoint.acked,
                               of=len(alerts), found_on_topic=len(already))
        return already

    def _finish(self, info: FileInfo, outcome: Outcome, verdict: str, problems: list[str]) -> Result:
        folder = self.settings.done if outcome is Outcome.DONE else self.settings.failed
        target = files.destination(folder, info.path.name)
        if problems:
            files.write_report(files.report_path(target), source=info.path.name, sha256=info.sha256,
                               verdict=verdict, problems=problems)
        files.move(info.path, folder, target)
        self.checkpoints.delete(info.path.name)
        self._files.labels(self.services.name, outcome.value).inc()
        self.log.info("file handled", file=info.path.name, outcome=outcome.value, result=verdict,
                      moved_to=str(target))
        return Result(outcome, moved_to=target)
