"""The policy router: `alerts.*` in, `feed.<partner>` / `audit` / `dlq.rejected` out.

Exactly once: each poll batch is one Kafka transaction holding the forwarded
feed records, one audit entry per input record, dead letters, replay-window
entries (`router.seen`) and the consumer offsets. A crash anywhere aborts the
transaction; on restart the router resumes from the committed offsets with
the committed replay set and audit chain head, so nothing is lost or doubled.
A transaction that fails or does not finish in time (a broker died under it)
takes the same path without leaving the process: new clients, state re-read.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from kafka import TopicPartition
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters import transactions
from bus.adapters.kafka_legacy import AUDIT_TOPIC, DLQ_TOPIC, REPLAY_TOPIC
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings
from bus.core.audit import AuditChain
from bus.core.keyring import KeyResolver
from bus.core.policy import Policy
from bus.core.signing import V1_0_ACCEPTED_UNTIL
from bus.core.trust import FreshnessPolicy
from bus.services.routing import RoutingResult, route

log = structlog.get_logger("bus.router")

ALERTS_PATTERN = r"^alerts\..+"
REJECT_HEADERS = ("bus_reject_reason", "bus_reject_detail", "bus_source_topic",
                  "bus_source_partition", "bus_source_offset")


@dataclass
class RouterOptions:
    group_id: str = "bus-router"
    transactional_id: str = "bus-router-1"
    batch_size: int = 500
    poll_timeout_ms: int = 500
    replay_window: timedelta = timedelta(days=8)
    reload_interval: float = 5.0
    partitions: int = 6
    replication: int = 1
    commit_timeout: float = 30.0
    """Seconds each transaction step may take before the router rebuilds its clients."""
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL
    """Wire format 1.0 records created at or after this are rejected `unsupported-format`."""


@dataclass
class RouterStats:
    routed: int = 0
    rejected: int = 0
    delivered: int = 0
    batches: int = 0
    recoveries: int = 0
    """Transactions not committed (failed or timed out), each followed by a rebuild."""
    by_reason: dict[str, int] = field(default_factory=dict)


Loader = Callable[[], tuple[Policy, KeyResolver]]


class Router:
    """Owns one transactional producer and one consumer; single-threaded loop."""

    def __init__(
        self,
        settings: KafkaSettings,
        load: Loader,
        *,
        freshness: FreshnessPolicy | None = None,
        options: RouterOptions | None = None,
        changed: Callable[[], bool] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._load = load
        self._changed = changed or (lambda: False)
        self.freshness = freshness or FreshnessPolicy()
        self.options = options or RouterOptions()
        self.clock = clock
        self.schemas = default_schemas()
        self.empact_codes = default_empact_codes()
        self.stats = RouterStats()
        self.policy, self.resolver = load()
        self._feeds = {p.id: p.feed for p in self.policy.partners}
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._seen: dict[str, int] = {}
        self.chain = AuditChain()
        self._producer = None
        self._consumer = None

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        opts = self.options
        specs = kafka_adapter.default_topics(opts.partitions, opts.replication)
        specs += [kafka_adapter.feed_topic_spec(p.feed, opts.partitions, opts.replication)
                  for p in self.policy.partners]
        created = kafka_adapter.ensure_topics(self.settings, specs)
        if created:
            log.info("topics created", topics=created)
        self._connect()
        log.info("router started", bootstrap=self.settings.describe(), group=opts.group_id,
                 transactional_id=opts.transactional_id, policy_version=self.policy.version,
                 partners=len(self.policy.partners), replay_entries=len(self._seen),
                 audit_seq=self.chain.seq)

    def _connect(self) -> None:
        """Clients and state from what Kafka committed: the producer first, as its
        initialisation fences an older instance and settles its open transaction,
        which read_committed reads of the replay set and audit head wait for."""
        opts = self.options
        self._producer = kafka_adapter.producer(
            self.settings, transactional_id=opts.transactional_id, linger_ms=2,
        )
        self._producer.init_transactions()  # fences any older instance with this id
        self._seen = self._load_seen()
        self.chain = self._load_chain_head()
        self._consumer = kafka_adapter.consumer(
            self.settings, group_id=opts.group_id, max_poll_records=opts.batch_size,
            # Static membership: a restarted router takes its partitions back at once
            # instead of waiting for the dead instance's session to expire.
            group_instance_id=opts.transactional_id,
        )
        self._consumer.subscribe(pattern=ALERTS_PATTERN)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reload_requested.set())

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False, timeout_ms=10_000)
        if self._producer is not None:
            self._producer.close(timeout=10)
        log.info("router stopped", **self.stats.__dict__)

    def _recover(self, error: Exception) -> None:
        """Start over from committed state, as a restarted router would, until it works or we stop."""
        self.stats.recoveries += 1
        log.error("transaction not committed; rebuilding clients and state from what Kafka committed",
                  error=str(error), error_type=type(error).__name__)
        delay = 1.0
        while not self._stop.is_set():
            self._drop_clients()
            try:
                self._connect()
            except KafkaError as exc:
                log.error("recovery attempt failed; retrying", error=str(exc), retry_in_s=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            log.info("recovered", replay_entries=len(self._seen), audit_seq=self.chain.seq)
            return

    def _drop_clients(self) -> None:
        if self._producer is not None:
            transactions.discard(self._producer)
            self._producer = None
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False, timeout_ms=5_000)
            except KafkaError as exc:
                log.debug("consumer did not close cleanly", error=str(exc))
            self._consumer = None

    def run(self, max_idle: float | None = None) -> RouterStats:
        """Route until stopped (or, for tests and one-shot jobs, until idle for `max_idle` s)."""
        self.start()
        last_work = time.monotonic()
        next_reload_check = time.monotonic() + self.options.reload_interval
        try:
            while not self._stop.is_set():
                if self._reload_requested.is_set() or time.monotonic() >= next_reload_check:
                    self._maybe_reload(force=self._reload_requested.is_set())
                    next_reload_check = time.monotonic() + self.options.reload_interval
                if self.process_once() or not self._consumer.assignment():
                    last_work = time.monotonic()  # joining the group is not idleness
                elif max_idle is not None and time.monotonic() - last_work > max_idle:
                    break
        finally:
            self.close()
        return self.stats

    # reload --------------------------------------------------------------------
    def _maybe_reload(self, force: bool) -> None:
        self._reload_requested.clear()
        if not force and not self._changed():
            return
        try:
            policy, resolver = self._load()
        except Exception as exc:  # keep routing with the last good version
            log.error("reload refused; keeping the current directory and policy", error=str(exc))
            return
        new_feeds = {p.feed for p in policy.partners} - {p.feed for p in self.policy.partners}
        if new_feeds:
            kafka_adapter.ensure_topics(self.settings, [
                kafka_adapter.feed_topic_spec(t, self.options.partitions, self.options.replication)
                for t in sorted(new_feeds)])
        self.policy, self.resolver = policy, resolver
        self._feeds = {p.id: p.feed for p in policy.partners}
        log.info("reloaded", policy_version=policy.version,
                 directory_version=getattr(resolver, "version", None))

    # state ---------------------------------------------------------------------
    def _load_seen(self) -> dict[str, int]:
        horizon = int((self.clock() - self.options.replay_window).timestamp() * 1000)
        seen: dict[str, int] = {}
        for msg in kafka_adapter.read_to_end(self.settings, REPLAY_TOPIC):
            if msg.value is None:
                seen.pop(msg.key.decode(), None)
                continue
            created_ms = int(msg.value)
            if created_ms >= horizon:
                seen[msg.key.decode()] = created_ms
        return seen

    def _load_chain_head(self) -> AuditChain:
        for window in (64, None):
            last = None
            for msg in kafka_adapter.read_to_end(self.settings, AUDIT_TOPIC, last=window):
                last = msg
            if last is not None:
                return AuditChain.after(json.loads(last.value))
        return AuditChain()

    # the work ------------------------------------------------------------------
    def process_once(self) -> bool:
        """Poll one batch and route it in one transaction; False if there was nothing."""
        assert self._consumer is not None and self._producer is not None
        batch = self._consumer.poll(timeout_ms=self.options.poll_timeout_ms,
                                    max_records=self.options.batch_size)
        messages = [m for msgs in batch.values() for m in msgs]
        if not messages:
            return False
        started = time.perf_counter()
        now = self.clock()
        pending_seen: dict[str, int] = {}
        chain = self.chain
        results: list[RoutingResult] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        self._producer.begin_transaction()
        try:
            for msg in messages:
                t0 = time.perf_counter()
                headers = [(k, bytes(v) if v is not None else b"") for k, v in (msg.headers or [])]
                value = msg.value if msg.value is not None else b""
                result = route(
                    msg.key, msg.value, headers, resolver=self.resolver, policy=self.policy, feed_topics=self._feeds,
                    freshness=self.freshness,
                    seen=lambda mid: mid in self._seen or mid in pending_seen,
                    now=now, schemas=self.schemas, empact_codes=self.empact_codes,
                    accept_v1_0_until=self.options.accept_v1_0_until,
                )
                if result.accepted:
                    for feed in result.feeds:
                        self._producer.send(feed, key=msg.key, value=value, headers=headers)
                    assert result.message_id is not None and result.created is not None
                    created_ms = int(result.created.timestamp() * 1000)
                    pending_seen[result.message_id] = created_ms
                    self._producer.send(REPLAY_TOPIC, key=result.message_id.encode(),
                                        value=str(created_ms).encode())
                else:
                    self._producer.send(DLQ_TOPIC, key=msg.key, value=value,
                                        headers=headers + self._reject_headers(msg, result))
                entry = {
                    **result.audit_entry(),
                    "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
                    "routed_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "directory_version": getattr(self.resolver, "version", None),
                }
                sealed, chain = chain.link(entry)
                self._producer.send(AUDIT_TOPIC, key=(result.message_id or "").encode() or None,
                                    value=json.dumps(sealed, sort_keys=True, separators=(",", ":")).encode())
                offsets[TopicPartition(msg.topic, msg.partition)] = OffsetAndMetadata(msg.offset + 1, "", -1)
                results.append(result)
                if result.crashed:
                    log.error("unexpected error on a record; dead-lettered", detail=result.detail,
                              topic=msg.topic, partition=msg.partition, offset=msg.offset)
                log.info(
                    "routed" if result.accepted else "rejected",
                    message_id=result.message_id, producer=result.producer, type=result.alert_type,
                    recipients=list(result.decision.recipients) if result.decision else [],
                    reason=str(result.reason) if result.reason else None, detail=result.detail or None,
                    topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
                )
            transactions.commit(self._producer, offsets, self._consumer.group_metadata(),
                                self.options.commit_timeout)
        except ProducerFencedError:
            log.critical("another router instance took over this transactional id; exiting")
            self._stop.set()
            raise
        except KafkaError as exc:
            # Outcome unknown (a timed-out commit may still complete): never guess, re-read.
            self._recover(exc)
            return True
        # Only now is the batch durable: update in-memory state to match.
        self._seen.update(pending_seen)
        self.chain = chain
        self._account(results)
        log.debug("batch committed", records=len(messages),
                  elapsed_ms=round((time.perf_counter() - started) * 1000, 2))
        return True

    def _reject_headers(self, msg, result: RoutingResult) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
        values = (str(result.reason), result.detail[:1000], msg.topic, str(msg.partition), str(msg.offset))
        return [(name, v.encode()) for name, v in zip(REJECT_HEADERS, values, strict=True)]

    def _account(self, results: list[RoutingResult]) -> None:
        self.stats.batches += 1
        for r in results:
            if r.accepted:
                self.stats.routed += 1
                self.stats.delivered += len(r.feeds)
            else:
                self.stats.rejected += 1
                key = str(r.reason)
                self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1
