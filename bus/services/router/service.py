"""The router loop: tasks, transactions, rebalances, recovery.

Any number of router processes share the routing tasks of one consumer group. Each
process is one instance (`bus.adapters.instance_lock`): transactional id
`<prefix>-<instance>`, static group member `<instance>`. The loop:

    poll -> apply rebalances (drop revoked tasks, restore assigned ones) -> route the
    batch in one transaction -> checkpoints that are due -> eviction -> again

One transaction per batch holds every output of it (`batch.py`) and the consumer
offsets. Outputs are sent, every delivery awaited, then offsets and commit, each step
within `commit_timeout`. Task state changes only after the commit succeeded.

When a transaction fails:

- `Fenced`: another process took over this instance (or the group fenced its static
  member): log critical and exit non-zero. Never spin.
- no answer (`OutcomeUnknown`) or no broker (`KafkaUnavailable`): the outcome is
  unknown. Rebuild the clients (the new producer's `init` fences the old one and
  settles its transaction) and restore every task from Kafka; backoff up to 30 s.
- the offsets were refused (a rebalance happened): abort, rewind, let the next poll
  apply the new assignment.
- anything else (a record the broker or the client refused, an output that could not
  be built): abort and bisect. Each half runs in its own transaction; a single record
  that still fails is dead-lettered in the bounded form (`oversized` for a size limit,
  else `internal-error`) and routing goes on. No input can cause an endless loop.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bus.adapters.health import HealthServer
from bus.adapters.instance_lock import InstanceLock
from bus.adapters.kafka import (
    Consumer,
    Delivery,
    Engine,
    Polled,
    TopicPartition,
    TransactionalProducer,
)
from bus.adapters.kafka._common import Deadline
from bus.adapters.kafka.reading import ensure_topics
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.core.bounded import bounded_text
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.keyring import KeyResolver
from bus.core.policy import Policy
from bus.core.topology import (
    AUDIT_CHECKPOINTS_TOPIC,
    AUDIT_TOPIC,
    CHANGELOG_TOPIC,
    DAY_MS,
    DLQ_TOPIC,
    ROUTER_SUBSCRIPTION,
    Replication,
    TopicSpec,
    core_topics,
    feed_topic_spec,
    receipts_topic,
    receipts_topic_spec,
)
from bus.errors import (
    BatchNotCommitted,
    BusError,
    ConfigError,
    Fenced,
    KafkaError,
    KafkaUnavailable,
    NotAuthorized,
    OutcomeUnknown,
    RecordTooLarge,
    RejectReason,
    TopologyMismatch,
)
from bus.services.router.batch import Context, Plan, build
from bus.services.router.metrics import RouterMetrics
from bus.services.router.options import RouterIdentity, RouterOptions
from bus.services.router.state import TaskState, restore

log = structlog.get_logger("bus.router")

Loader = Callable[[], tuple[Policy, KeyResolver]]
LAG_INTERVAL = 15.0
SLOW_TURN = 0.06
"""A turn longer than this is logged (info) with its wall time by phase: at 500 alerts/s one
such stall is enough to set the p99 of end-to-end latency."""


class _Phases:
    """Wall time of one turn by phase; `mark(name)` charges the time since the last mark to `name`."""

    __slots__ = ("_gc", "_last", "_started", "spent")

    def __init__(self) -> None:
        self._started = self._last = time.monotonic()
        self._gc = _gc_clock.seconds
        self.spent: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.spent[phase] = self.spent.get(phase, 0.0) + now - self._last
        self._last = now

    def total(self) -> float:
        return self._last - self._started

    def report(self) -> dict[str, float]:
        """Milliseconds by phase; `gc` is the cyclic collector's share, inside whichever phase it hit."""
        spent = {**self.spent, "gc": _gc_clock.seconds - self._gc}
        return {k: round(v * 1000, 1) for k, v in spent.items() if v >= 0.0005}


class _GcClock:
    """Seconds the cyclic garbage collector ran in this process (a `gc.callbacks` hook)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._since = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._since


_gc_clock = _GcClock()


@dataclass
class RouterStats:
    routed: int = 0
    rejected: int = 0
    delivered: int = 0
    batches: int = 0
    recoveries: int = 0
    """Times the router rebuilt its clients and restored its tasks (an unknown outcome, no broker)."""
    bisections: int = 0
    checkpoints: int = 0
    restores: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class _Rebalances:
    """The consumer's rebalance listener: records what happened, for the loop to act on after `poll`.

    kafka-python calls these on its IO thread while `poll` blocks, confluent and the memory
    engine on the polling thread: either way the loop applies them in order, on its own
    thread, between transactions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, list[TopicPartition]]] = []

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._events.append(("assigned", list(partitions)))

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._events.append(("revoked", list(partitions)))

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._events.append(("lost", list(partitions)))

    def take(self) -> list[tuple[str, list[TopicPartition]]]:
        with self._lock:
            events, self._events = self._events, []
            return events


def _settle_heap() -> None:
    """Exempt what start-up made (modules, schemas, policy, keys, clients) from the cyclic GC.

    It lives as long as the process, yet every older-generation collection walked all of it
    again, in the middle of a batch: with py-spy on a router at 100 alerts/s, 14 % of the
    loop's samples were in the collector (2.6 % after). Objects made later are collected as
    before. Once per process: tests run many routers in one.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()
        gc.callbacks.append(_gc_clock)


_heap_settled = False


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Router:
    """One router instance. `run()` routes until stopped; tests drive `start()` and `turn()`."""

    def __init__(
        self,
        engine: Engine,
        load: Loader,
        identity: RouterIdentity,
        options: RouterOptions | None = None,
        *,
        changed: Callable[[], bool] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        schemas: SchemaSet | None = None,
        empact_codes: EmpactCodeList | None = None,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.options = options or RouterOptions()
        self._load = load
        self._changed = changed or (lambda: False)
        self.clock = clock
        self.schemas = schemas if schemas is not None else default_schemas()
        self.empact_codes = empact_codes if empact_codes is not None else default_empact_codes()
        self.stats = RouterStats()
        self.metrics = RouterMetrics()
        self.policy, self.resolver = load()
        self._check_identity(self.resolver)
        self.metrics.set_feeds(self.policy.feeds().values())
        self.tasks: dict[int, TaskState] = {}
        self.instance: str | None = None
        self.partitions: int | None = None
        self._lock: InstanceLock | None = None
        self._producer: TransactionalProducer | None = None
        self._consumer: Consumer | None = None
        self._probe: Consumer | None = None
        """Reads high watermarks for the lag metric and partition counts for the topology check;
        never the group consumer (librdkafka stops fetching a partition whose watermarks were
        queried before its first fetch, and a metadata request to it waits behind its long-polled
        fetch: 0.5 s a topic, 3 s of every start)."""
        self._positions: dict[TopicPartition, int] = {}
        self._topics: frozenset[str] | None = None
        """Topics this router can see, refreshed on start, reload and every minute."""
        self._next_topics = time.monotonic()
        self._rebalances = _Rebalances()
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._health: HealthServer | None = None
        self._ready = False
        self._last_turn = time.monotonic()
        self._next_reload = time.monotonic() + self.options.reload_interval
        self._next_eviction = time.monotonic() + self.options.eviction_interval
        self._next_lag = time.monotonic()
        self._lag_pending: list[TopicPartition] = []
        """Partitions whose lag this round has yet to measure, one a turn (last first)."""
        self._lag_round: dict[TopicPartition, int] = {}
        self._phases = _Phases()

    # -- identity and topics ---------------------------------------------------------------------

    def _check_identity(self, resolver: KeyResolver) -> None:
        """The router's key must be one the directory lists for it, or nobody could verify its work."""
        router_key = getattr(resolver, "router_key", None)
        if router_key is None:
            return  # a plain keyring (tests, --keys) lists no routers
        try:
            router_key(self.identity.signer.key_id, self.identity.router_id, self.clock())
        except BusError as exc:
            raise ConfigError(
                f"the router's key {self.identity.signer.key_id} cannot sign for router {self.identity.router_id}: "
                f"{getattr(exc, 'detail', exc)}. List it with `bus federation add-router`",
                [("router_key", "must be a key the federation directory lists for --router-id")]) from None

    @property
    def store_dir(self) -> Path:
        assert self.instance is not None
        return self.options.state_dir / self.instance

    def _members(self, resolver: KeyResolver) -> list[str]:
        members = getattr(resolver, "members", None)
        if members is not None:
            return sorted(m.id for m in members)
        keys = getattr(resolver, "keys", {})
        return sorted({owner for owner, _ in keys.values()}) if isinstance(keys, dict) else []

    def topic_specs(self, policy: Policy, resolver: KeyResolver, replication: Replication) -> list[TopicSpec]:
        """Every topic the router reads or writes, as it would create them."""
        from bus.core.models import AlertType

        opts = self.options
        retention = str(int(opts.replay_window.total_seconds() * 1000) + DAY_MS)
        specs = []
        for spec in core_topics([t.value for t in AlertType], replication, opts.partitions):
            if spec.name == CHANGELOG_TOPIC:
                spec = TopicSpec(spec.name, spec.partitions, spec.replication,
                                 tuple((k, retention if k == "retention.ms" else v) for k, v in spec.config))
            specs.append(spec)
        specs.append(TopicSpec(AUDIT_CHECKPOINTS_TOPIC, 1, replication.factor,
                               (("min.insync.replicas", str(replication.min_insync)), ("retention.ms", "-1"))))
        specs += [feed_topic_spec(feed, replication) for feed in sorted(set(policy.feeds().values()))]
        specs += [receipts_topic_spec(receipts_topic(m), replication) for m in self._members(resolver)]
        return specs

    def _ensure_topics(self, policy: Policy, resolver: KeyResolver) -> None:
        if not self.options.create_topics:
            return
        admin = self.engine.admin()
        try:
            brokers = admin.describe_cluster().brokers
            replication = (Replication(self.options.replication, min(2, self.options.replication))
                           if self.options.replication else Replication.for_cluster(brokers))
            created = ensure_topics(admin, self.topic_specs(policy, resolver, replication))
        finally:
            admin.close()
        if created:
            log.info("topics created", topics=created)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._lock = InstanceLock.acquire(self.options.state_dir, self.options.instance)
        self.instance = self._lock.name
        try:
            self._ensure_topics(self.policy, self.resolver)
            self._connect()
            if self.options.health_port is not None:
                self._health = HealthServer(self.options.health_host, self.options.health_port,
                                            metrics=self.metrics, live=self._live, ready=self._readiness,
                                            server_name="bus-router")
                self._health.start()
        except BaseException:
            self._release()
            raise
        log.info("router started", instance=self.instance, engine=self.engine.name, group=self.options.group_id,
                 transactional_id=self.transactional_id, router_id=self.identity.router_id,
                 policy_version=self.policy.version, partners=len(self.policy.partners),
                 health_port=self._health.address[1] if self._health else None)

    @property
    def transactional_id(self) -> str:
        return f"{self.options.transactional_prefix}-{self.instance}"

    @property
    def health_address(self) -> tuple[str, int] | None:
        return self._health.address if self._health else None

    def _connect(self) -> None:
        """New clients: the producer first, as its `init` fences an older one with this id and
        settles its open transaction, which restores then wait for."""
        opts = self.options
        producer = self.engine.transactional_producer(self.transactional_id, linger_ms=2,
                                                      transaction_timeout_ms=opts.transaction_timeout_ms)
        try:
            producer.init(opts.commit_timeout)
        except BaseException:
            producer.close(0)
            raise
        self._producer = producer
        self._consumer = self.engine.consumer(
            group_id=opts.group_id, group_instance_id=self.instance, read_committed=True, from_beginning=True,
            max_poll_records=opts.batch_size, session_timeout_ms=opts.session_timeout_ms,
            client_id=f"bus-router-{self.instance}")
        self._rebalances = _Rebalances()
        self._consumer.subscribe(pattern=ROUTER_SUBSCRIPTION, listener=self._rebalances)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reload_requested.set())

    def stop(self) -> None:
        self._stop.set()

    def _drop_clients(self) -> None:
        if self._producer is not None:
            self._producer.close(0)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._positions.clear()
        self._drop_tasks(list(self.tasks))

    def _drop_tasks(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            task = self.tasks.pop(p, None)
            if task is not None:
                task.close()
        self.metrics.tasks.set(len(self.tasks))

    def _release(self) -> None:
        if self._health is not None:
            self._health.stop()
            self._health = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        self._ready = False
        self._drop_clients()
        self._release()
        log.info("router stopped", instance=self.instance, routed=self.stats.routed, rejected=self.stats.rejected,
                 delivered=self.stats.delivered, batches=self.stats.batches, recoveries=self.stats.recoveries,
                 bisections=self.stats.bisections, checkpoints=self.stats.checkpoints, by_reason=self.stats.by_reason)

    def run(self, max_idle: float | None = None) -> RouterStats:
        """Route until stopped (or, for tests and one-shot jobs, until idle for `max_idle` s).

        A router that stops cleanly first checkpoints every chain it holds, so all its
        entries are covered by a signature when it hands its tasks over.
        """
        self.start()
        _settle_heap()
        last_work = time.monotonic()
        fenced = False
        try:
            while not self._stop.is_set():
                worked = self.turn()
                if worked or not self.tasks:
                    last_work = time.monotonic()  # joining the group is not idleness
                elif max_idle is not None and time.monotonic() - last_work > max_idle:
                    break
        except Fenced as exc:
            fenced = True
            log.critical("another process took over this router instance; exiting", instance=self.instance,
                         transactional_id=self.transactional_id, error=str(exc))
            raise
        finally:
            if not fenced:
                self.checkpoint_all()
            self.close()
        return self.stats

    def checkpoint_all(self) -> None:
        """One transaction of checkpoints over every held chain with uncovered entries (best effort)."""
        pending = [p for p, t in self.tasks.items() if t.segment]
        if not pending or self._producer is None or self.partitions is None:
            return
        try:
            plan = build(self._context(), self.tasks, [], checkpoint=pending)
            self._apply(plan, self._commit(plan))
        except (BatchNotCommitted, KafkaError) as exc:
            log.warning("final checkpoints not written; the next owner of these tasks writes them",
                        tasks=pending, error=str(exc)[:300])
            return
        self.stats.checkpoints += plan.checkpoints
        self.metrics.checkpoints.inc(plan.checkpoints)

    # -- health ------------------------------------------------------------------------------------

    def _live(self) -> tuple[bool, dict[str, Any]]:
        idle = time.monotonic() - self._last_turn
        return idle < self.options.live_after, {"seconds_since_last_turn": round(idle, 1)}

    def _readiness(self) -> tuple[bool, dict[str, Any]]:
        return self._ready, {"instance": self.instance, "tasks": sorted(self.tasks)}

    # -- the loop ------------------------------------------------------------------------------------

    def turn(self) -> bool:
        """One round: poll, rebalance, route, checkpoint, evict. True if it wrote anything."""
        self._last_turn = time.monotonic()
        phases = self._phases = _Phases()
        self._maybe_reload()
        phases.mark("reload")
        if self._consumer is None or self._producer is None:
            self._recover(KafkaUnavailable("no clients"))
            return False
        try:
            polled = self._consumer.poll(self.options.poll_timeout, self.options.batch_size)
            phases.mark("poll")
            restored = self._apply_rebalances()
            phases.mark("rebalance")
        except (Fenced, NotAuthorized):
            raise
        except KafkaError as exc:  # no broker, no answer, a client gone wrong: start over
            self._recover(exc)
            return False
        worked = restored  # a (re)assignment is work: the new tasks' records are yet to come
        if polled:
            worked = self._process(polled) or worked
        if self._consumer is not None and self.tasks and not polled:
            worked = self._checkpoint_idle() or worked
            phases.mark("idle_checkpoint")
        self._housekeeping()
        self._log_if_slow(phases, len(polled))
        return worked

    def _log_if_slow(self, phases: _Phases, polled: int) -> None:
        """Where a slow turn's time went (poll excluded: waiting for records is not a stall)."""
        busy = phases.total() - phases.spent.get("poll", 0.0)
        if busy >= SLOW_TURN:
            log.info("slow turn", busy_ms=round(busy * 1000, 1), polled=polled, **phases.report())

    def _apply_rebalances(self) -> bool:
        """Act on what the group did during `poll`; True if tasks were restored."""
        events = self._rebalances.take()
        if not events:
            return False
        assert self._consumer is not None
        for kind, tps in events:
            gone = sorted({tp.partition for tp in tps} & set(self.tasks))
            if kind in ("revoked", "lost"):
                for tp in tps:
                    self._positions.pop(tp, None)
            if kind in ("revoked", "lost") and gone:
                log.info("tasks released", tasks=gone, how=kind)
                self._drop_tasks(gone)
        assignment = self._consumer.assignment()
        self.metrics.assigned_partitions.set(len(assignment))
        wanted = sorted({tp.partition for tp in assignment})
        self._check_topology(assignment)
        new = [p for p in wanted if p not in self.tasks]
        if new:
            started = time.monotonic()
            horizon = int((self.clock() - self.options.replay_window).timestamp() * 1000)
            self._ready = False
            restored = restore(self.engine, new, self.store_dir, window=2 * self.options.checkpoint_every + 64,
                               timeout=self.options.restore_timeout, horizon_ms=horizon)
            self.tasks.update(restored)
            elapsed = time.monotonic() - started
            self.metrics.restore_seconds.observe(elapsed)
            self.stats.restores += 1
            log.info("tasks restored", tasks=new, seconds=round(elapsed, 3),
                     heads={p: restored[p].chain.seq for p in new},
                     replay_ids={p: restored[p].store.count() for p in new})
        self.metrics.tasks.set(len(self.tasks))
        self._ready = True
        return bool(new)

    def _refresh_topics(self) -> None:
        """Asked of the probe, not the group consumer: there the metadata request waits behind its
        long-polled fetch, a stall of the loop every minute."""
        if self._consumer is not None:
            self._topics = frozenset(self._unassigned().topics())
            self._next_topics = time.monotonic() + 60.0

    def _check_outputs(self, policy: Policy) -> None:
        """Every topic the router writes exists: a missing one would fail every batch."""
        self._refresh_topics()
        assert self._topics is not None
        missing = sorted({DLQ_TOPIC, AUDIT_CHECKPOINTS_TOPIC, *policy.feeds().values()} - self._topics)
        if missing:
            raise TopologyMismatch(f"topic(s) {', '.join(missing)} do not exist (or this router may not see them): "
                                   "run `bus provision`, or let the router create its topics")

    def _check_topology(self, assignment: set[TopicPartition]) -> None:
        """All co-partitioned topics have N partitions and the assignment holds whole tasks."""
        assert self._consumer is not None
        self._check_outputs(self.policy)
        probe = self._unassigned()
        counts = {t: len(probe.partitions_for(t)) for t in (AUDIT_TOPIC, CHANGELOG_TOPIC)}
        for topic in {tp.topic for tp in assignment}:
            counts[topic] = len(probe.partitions_for(topic))
        if counts[AUDIT_TOPIC] == 0:
            raise TopologyMismatch(f"topic {AUDIT_TOPIC} is missing (or this router may not see it): "
                                   "run `bus provision`, or let the router create its topics")
        n = counts[AUDIT_TOPIC]
        wrong = {t: c for t, c in counts.items() if c != n}
        if wrong:
            listed = ", ".join(f"{t} has {c}" for t, c in sorted(wrong.items()))
            raise TopologyMismatch(
                f"co-partitioned topics must all have the {n} partitions of {AUDIT_TOPIC}, but {listed}: "
                "a routing task is partition p of each of them. Recreate the topic with that count "
                "(partition counts of these topics never change)")
        for p in {tp.partition for tp in assignment}:
            missing = sorted(t for t in {tp.topic for tp in assignment} if TopicPartition(t, p) not in assignment)
            if missing:
                raise TopologyMismatch(
                    f"task {p} is split: this router was given partition {p} of some input topics but not of "
                    f"{', '.join(missing)} (the group must use the range assignor on co-partitioned topics)")
        self.partitions = n

    # -- routing a batch -----------------------------------------------------------------------------

    def _context(self) -> Context:
        assert self.partitions is not None
        return Context(policy=self.policy, resolver=self.resolver, feeds=self.policy.feeds(), options=self.options,
                       identity=self.identity, schemas=self.schemas, empact_codes=self.empact_codes,
                       capabilities=self.engine.capabilities, engine=self.engine.name, partitions=self.partitions,
                       now=self.clock(), directory_version=getattr(self.resolver, "version", None),
                       topics=self._topics)

    def _process(self, polled: list[Polled]) -> bool:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        records = [r for r in polled if r.partition in self.tasks and r.tp in assigned]
        orphans = [r for r in polled if r.tp in assigned and r.partition not in self.tasks]
        if orphans:  # assigned but not restored: never skip a record; start over from committed state
            self._recover(KafkaUnavailable(f"{len(orphans)} record(s) of tasks that are not restored"))
            return False
        if not records:
            return False
        self._phases.mark("select")
        started = time.monotonic()
        chunks: deque[tuple[list[Polled], dict[int, tuple[RejectReason, str]]]] = deque([(records, {})])
        while chunks:
            chunk, forced = chunks.popleft()
            try:
                plan, deliveries = self._transact(chunk, forced)
            except BatchNotCommitted as failure:
                if failure.kind == "record":
                    if forced:  # even the bounded form failed: not the record's doing
                        self._rewind([chunk, *[c for c, _ in chunks]])
                        self._recover(failure.error)
                        return True
                    self._bisect(chunk, failure, chunks)
                    continue
                self._rewind([chunk, *[c for c, _ in chunks]])
                if failure.kind == "group":
                    log.warning("transaction refused by the group (a rebalance); batch will be read again",
                                error=str(failure.error))
                else:
                    self._recover(failure.error)
                return True
            self._apply(plan, deliveries)
            self._account(plan, len(chunk), time.monotonic() - started)
        return True

    def _bisect(self, chunk: list[Polled], failure: BatchNotCommitted,
                chunks: deque[tuple[list[Polled], dict[int, tuple[RejectReason, str]]]]) -> None:
        self.stats.bisections += 1
        self.metrics.bisections.inc()
        if len(chunk) == 1:
            too_large = isinstance(failure.error, RecordTooLarge)
            reason = RejectReason.OVERSIZED if too_large else RejectReason.INTERNAL_ERROR
            record = chunk[0]
            log.error("a record failed its transaction alone; dead-lettered in the bounded form",
                      topic=record.topic, partition=record.partition, offset=record.offset, reason=str(reason),
                      error=bounded_text(str(failure.error)[:400]))
            chunks.appendleft((chunk, {0: (reason, f"its transaction failed: {str(failure.error)[:300]}")}))
            return
        half = len(chunk) // 2
        log.warning("transaction failed on a record; bisecting the batch", records=len(chunk),
                    error=str(failure.error)[:300])
        chunks.appendleft((chunk[half:], {}))
        chunks.appendleft((chunk[:half], {}))

    def _transact(self, chunk: list[Polled],
                  forced: dict[int, tuple[RejectReason, str]]) -> tuple[Plan, list[Delivery]]:
        assert self._producer is not None and self._consumer is not None
        try:
            plan = build(self._context(), self.tasks, chunk, force_bounded=forced)
        except Exception as exc:  # a bug while building outputs: isolate the record, never loop
            log.exception("building the outputs of a batch failed")
            raise BatchNotCommitted("record", exc) from exc
        self._phases.mark("build")
        return plan, self._commit(plan)

    def _commit(self, plan: Plan) -> list[Delivery]:
        """Send the plan, await every delivery, commit with the offsets; `BatchNotCommitted` says how it failed."""
        producer, consumer = self._producer, self._consumer
        assert producer is not None and consumer is not None
        deadline = Deadline(self.options.commit_timeout)
        phases = self._phases
        try:
            producer.begin()
        except Fenced:
            raise
        except KafkaError as exc:
            raise BatchNotCommitted("unknown", exc) from exc
        phases.mark("begin")
        try:
            futures = []
            for out in plan.outputs:
                try:
                    futures.append(producer.send(out.topic, out.value, key=out.key, headers=out.headers,
                                                 partition=out.partition))
                except (OutcomeUnknown, KafkaUnavailable, NotAuthorized, Fenced):
                    raise
                except KafkaError as exc:
                    raise BatchNotCommitted("record", exc, out.source) from exc
            phases.mark("send")
            deliveries = []
            for out, future in zip(plan.outputs, futures, strict=True):
                try:
                    deliveries.append(future.result(max(0.01, deadline.remaining())))
                except (OutcomeUnknown, KafkaUnavailable, NotAuthorized, Fenced):
                    raise
                except KafkaError as exc:
                    raise BatchNotCommitted("record", exc, out.source) from exc
            phases.mark("deliveries")
            try:
                producer.send_offsets(plan.offsets, consumer.group_metadata(), max(0.01, deadline.remaining()))
            except (OutcomeUnknown, KafkaUnavailable, Fenced):
                raise
            except KafkaError as exc:
                raise BatchNotCommitted("group", exc) from exc
            phases.mark("offsets")
            producer.commit(max(0.01, deadline.remaining()))
            phases.mark("commit")
            return deliveries
        except Fenced:
            raise
        except BatchNotCommitted as failure:
            self._abort(failure)
            raise
        except (OutcomeUnknown, KafkaUnavailable) as exc:
            raise BatchNotCommitted("unknown", exc) from exc
        except NotAuthorized as exc:
            log.critical("the router is not allowed to write or commit something it needs; check its ACLs "
                         "(`bus provision`)", error=str(exc))
            raise BatchNotCommitted("unknown", exc) from exc
        except KafkaError as exc:  # the commit failed and must be aborted: a record's doing
            refused = BatchNotCommitted("record", exc)
            self._abort(refused)
            raise refused from exc

    def _abort(self, failure: BatchNotCommitted) -> None:
        assert self._producer is not None
        try:
            self._producer.abort(self.options.commit_timeout)
        except Fenced:
            raise
        except KafkaError as exc:  # cannot even abort: start over
            raise BatchNotCommitted("unknown", exc) from failure.error

    def _apply(self, plan: Plan, deliveries: list[Delivery]) -> None:
        """The transaction committed: task state follows it (stores only now, never ahead of Kafka)."""
        now = time.monotonic()
        self._positions.update(plan.offsets)
        for p, update in plan.tasks.items():
            task = self.tasks[p]
            task.chain, task.segment, task.prev_checkpoint = update.chain, update.segment, update.prev_checkpoint
            task.segment_since = update.segment_since if update.segment_since is not None else now
            if update.changelog:
                next_offset = max(deliveries[i].offset for i in update.changelog) + 1
                task.store.apply(update.routed.values(), next_offset)
        self._phases.mark("apply")

    def _account(self, plan: Plan, records: int, elapsed: float) -> None:
        stats, metrics = self.stats, self.metrics
        routed = rejected = delivered = 0
        # counted per batch, added to the metrics once per feed and reason (each metric
        # update takes a lock and a label lookup: once per record was a measurable cost)
        by_feed: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for v in plan.verdicts:
            if v.outcome == "routed":
                routed += 1
                delivered += len(v.feeds)
                for feed in v.feeds:
                    name = feed if not feed.startswith("receipts.") else "receipts"
                    by_feed[name] = by_feed.get(name, 0) + 1
            else:
                rejected += 1
                reason = v.reason or "internal-error"
                stats.by_reason[reason] = stats.by_reason.get(reason, 0) + 1
                by_reason[reason] = by_reason.get(reason, 0) + 1
                if v.result is not None and v.result.crashed:
                    log.error("unexpected error on a record; dead-lettered", topic=v.record.topic,
                              partition=v.record.partition, offset=v.record.offset, detail=v.detail)
            log.debug("routed" if v.outcome == "routed" else "rejected", topic=v.record.topic,
                      partition=v.record.partition, offset=v.record.offset, reason=v.reason,
                      message_id=(v.result.message_id if v.result else None), feeds=list(v.feeds),
                      detail=v.detail or None)
        if routed:
            metrics.routed.inc(routed)
        for feed, count in by_feed.items():
            metrics.deliver(feed, count)
        for reason, count in by_reason.items():
            metrics.reject(reason, count)
        stats.routed += routed
        stats.rejected += rejected
        stats.delivered += delivered
        stats.batches += 1
        stats.checkpoints += plan.checkpoints
        metrics.checkpoints.inc(plan.checkpoints)
        metrics.batch_records.inc(records)
        metrics.batch_seconds.observe(elapsed)
        log.info("batch", records=records, routed=routed, rejected=rejected, delivered=delivered,
                 checkpoints=plan.checkpoints, elapsed_ms=round(elapsed * 1000, 1))
        self._phases.mark("account")

    def _rewind(self, chunks: Sequence[Sequence[Polled]]) -> None:
        """Read these records again: each partition back to its first unprocessed offset."""
        if self._consumer is None:
            return
        first: dict[TopicPartition, int] = {}
        for chunk in chunks:
            for r in chunk:
                first[r.tp] = min(first.get(r.tp, r.offset), r.offset)
        assigned = self._consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                try:
                    self._consumer.seek(tp, offset)
                except KafkaError as exc:
                    log.debug("could not rewind", topic=tp.topic, partition=tp.partition, error=str(exc))

    def _checkpoint_idle(self) -> bool:
        """Checkpoints that fell due while nothing arrived."""
        probe = build(self._context(), self.tasks, [])
        if not probe.outputs:
            return False
        try:
            plan, deliveries = self._transact([], {})
        except BatchNotCommitted as failure:
            if failure.kind != "group":
                self._recover(failure.error)
            return False
        self._apply(plan, deliveries)
        self.stats.checkpoints += plan.checkpoints
        self.metrics.checkpoints.inc(plan.checkpoints)
        return True

    # -- recovery --------------------------------------------------------------------------------------

    def _recover(self, error: BaseException) -> None:
        """Start over from what Kafka committed, as a restarted router would, until it works or we stop."""
        self.stats.recoveries += 1
        self.metrics.recoveries.inc()
        self._ready = False
        log.error("transaction outcome unknown or Kafka unreachable; rebuilding clients and restoring tasks",
                  error=str(error)[:500], error_type=type(error).__name__)
        delay = 1.0
        while not self._stop.is_set():
            self._drop_clients()
            try:
                self._connect()
            except Fenced:
                raise
            except KafkaError as exc:
                log.error("recovery attempt failed; retrying", error=str(exc)[:300], retry_in_s=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            log.info("recovered: clients rebuilt; tasks restore on assignment", instance=self.instance)
            return

    # -- housekeeping -------------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_eviction:
            self._next_eviction = now + self.options.eviction_interval
            horizon = int((self.clock() - self.options.replay_window).timestamp() * 1000)
            evicted = sum(task.store.evict(horizon) for task in self.tasks.values())
            if evicted:
                log.info("replay window evicted", ids=evicted)
            self._phases.mark("evict")
        if now >= self._next_topics and self._consumer is not None:
            try:
                self._refresh_topics()
            except KafkaError as exc:
                log.debug("topics not listed", error=str(exc))
            self._phases.mark("topics")
        if self._consumer is not None and (self._lag_pending or now >= self._next_lag):
            self._measure_lag(now)
            self._phases.mark("lag")

    def _unassigned(self) -> Consumer:
        """The router's consumer that is never assigned (`_probe`), made on first use."""
        if self._probe is None:
            self._probe = self.engine.consumer(read_committed=True, client_id=f"bus-router-{self.instance}-probe")
        return self._probe

    def _measure_lag(self, now: float) -> None:
        """Records not yet routed: end of each assigned partition minus where this router is.

        One partition a turn: a watermark is a round trip to the broker, and all of them in one
        turn (~20 ms for the alert and ack partitions) held back every alert waiting for that turn.
        The gauges are set when the round is complete, every `LAG_INTERVAL` s.
        """
        assert self._consumer is not None
        if not self._lag_pending:
            self._next_lag = now + LAG_INTERVAL
            self._lag_pending = sorted(self._consumer.assignment(), reverse=True)
            self._lag_round = {}
            if not self._lag_pending:
                self.metrics.set_lag({})
                return
        tp = self._lag_pending.pop()
        position = self._positions.get(tp)
        if position is not None and tp in self._consumer.assignment():
            try:
                self._lag_round[tp] = max(0, self._unassigned().watermarks(tp, timeout=2.0)[1] - position)
            except KafkaError as exc:
                log.debug("lag not measured", error=str(exc))
                self._lag_pending = []
                return
        if not self._lag_pending:
            self.metrics.set_lag(self._lag_round)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        force = self._reload_requested.is_set()
        if not force and now < self._next_reload:
            return
        self._next_reload = now + self.options.reload_interval
        self._reload_requested.clear()
        if not force and not self._changed():
            return
        try:
            policy, resolver = self._load()
            self._check_identity(resolver)
            self._ensure_topics(policy, resolver)
            if self._consumer is not None:
                self._check_outputs(policy)
        except Exception as exc:  # keep routing with the last good version
            log.error("reload refused; keeping the current directory and policy", error=str(exc)[:500])
            return
        self.policy, self.resolver = policy, resolver
        self.metrics.set_feeds(policy.feeds().values())
        log.info("reloaded", policy_version=policy.version, directory_version=getattr(resolver, "version", None))

