"""Rows measured on router processes (`bus router run`, confluent engine), as operators run them.

- latency: alerts offered at a fixed rate (pre-sealed, sent on schedule by a raw producer)
  -> routed -> read from the partner feed by a read_committed consumer; time from the
  send call to the record arriving, per alert, p50/p95/p99;
- RSS and restart: one router routes 10,000 alerts and stops; a second start is timed
  (spawn -> /readyz with every task restored); it then routes 100,000 more while its
  resident set is sampled (at 50,000 and 100,000); it stops, and a third start is timed;
- scaling: a burst of alerts routed by one router, then (another group, same topics) by
  two routers sharing the tasks; time from the first record written to the last routed.

Each router's CPU comes from /proc/<pid>/stat over the measured interval.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    FEED,
    PRODUCER,
    ROUTER_ID,
    AlertFactory,
    blast,
    child_cpu,
    child_rss_mib,
    new_signer,
    raw_confluent_producer,
    seal_all,
    tag,
)
from bench.raw_relay import RelayTopics, read_stats
from bench.route import ensure_router_topics, start_at_end, write_policy
from bus.adapters.broker import free_port
from bus.adapters.keystore import generate_keypair
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from bus.core.sealing import SealedRecord
from bus.core.topology import Replication


@dataclass
class Files:
    policy: Path
    keys: Path
    router_key: Path
    state: Path
    logs: Path


def prepare(work: Path, signer: SigningKey) -> Files:
    work.mkdir(parents=True, exist_ok=True)
    keys = work / "keys"
    keys.mkdir(exist_ok=True)
    (keys / f"{PRODUCER}.pub").write_bytes(signer.public.to_pem())
    router_dir = work / "router-key"
    router_dir.mkdir(exist_ok=True)
    router_key, _, _ = generate_keypair(ROUTER_ID, router_dir)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    return Files(write_policy(work / "policy.yaml"), keys, router_key, work / "router-state", logs)


class ChildProcess:
    """A benchmark child process (its output in `log`): CPU read from /proc, stopped as SIGTERM
    does, killed if it lingers."""

    proc: subprocess.Popen[bytes]
    log: Any

    def cpu(self) -> float:
        return child_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RouterProcess(ChildProcess):
    """`bus router run` in a child process, watched through its health server."""

    def __init__(self, settings: KafkaSettings, files: Files, group: str, name: str) -> None:
        self.port = free_port()
        env = {**os.environ, "BUS_BOOTSTRAP": settings.bootstrap, "BUS_KAFKA_ENGINE": "confluent"}
        self.log = (files.logs / f"{name}.log").open("w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bus", "router", "run", "--policy", str(files.policy), "--keys", str(files.keys),
             "--router-key", str(files.router_key), "--router-id", ROUTER_ID, "--state-dir", str(files.state),
             "--group", group, "--transactional-prefix", group, "--health-port", str(self.port),
             "--log-level", os.environ.get("BENCH_ROUTER_LOG_LEVEL", "WARNING")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> dict[str, Any] | None:
        status, body = self._get("/readyz")
        return json.loads(body) if status == 200 else None

    def handled(self) -> int:
        """Input records routed or dead-lettered so far (from /metrics)."""
        _, body = self._get("/metrics")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(("bus_router_routed_total", "bus_router_rejected_total")):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all label values) from /metrics."""
        _, body = self._get("/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    def wait_listening(self, timeout: float = 120.0) -> float:
        """Seconds from spawn until the health server answers (imports, key, clients connected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._get("/healthz")[0]:
                return time.perf_counter() - self.started
            time.sleep(0.02)
        raise RuntimeError(f"router health server not up within {timeout:g} s; see {self.log.name}")

    def rejected(self) -> int:
        _, body = self._get("/metrics")
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                       if line.startswith("bus_router_rejected_total")))

    def wait_ready(self, tasks: int | None = None, timeout: float = 180.0) -> float:
        """Seconds from spawn until /readyz says ready (holding `tasks` tasks, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited with {self.proc.returncode}; see {self.log.name}")
            doc = self.ready()
            if doc is not None and doc.get("tasks") and (tasks is None or len(doc["tasks"]) == tasks):
                return time.perf_counter() - self.started
            time.sleep(0.05)
        raise RuntimeError(f"router not ready within {timeout:g} s; see {self.log.name}")

    def rss(self) -> float:
        return child_rss_mib(self.proc.pid)


def wait_handled(routers: list[RouterProcess], n: int, timeout: float = 900.0,
                 on_sample: Any = None) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(r.handled() for r in routers)
        if on_sample is not None:
            on_sample(done)
        if done >= n:
            return time.perf_counter()
        time.sleep(0.2)
    raise RuntimeError(f"routers did not handle {n} records within {timeout:g} s")


# -- latency ---------------------------------------------------------------------------------------


def _feed_reader(bootstrap: str, feed: str, arrivals: dict[bytes, float], stop: threading.Event,
                 ready: threading.Event) -> None:
    from confluent_kafka import OFFSET_END, Consumer
    from confluent_kafka import TopicPartition as CTP

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-latency-{tag()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10})
    meta = consumer.list_topics(feed, timeout=10)
    consumer.assign([CTP(feed, p, OFFSET_END) for p in meta.topics[feed].partitions])
    consumer.consume(1, 1.0)  # positions resolved before the load starts
    ready.set()
    while not stop.is_set():
        first = consumer.poll(0.05)  # returns at the first record (consume(n, t) would wait for n)
        if first is None:
            continue
        for m in [first, *consumer.consume(499, 0)]:
            if m.error() is None:
                seen = time.perf_counter()
                for k, v in m.headers() or ():
                    if k == "ce_id":
                        arrivals[v] = seen
                        break
    consumer.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


RELAY_RETRY_BACKOFF_MS = 5
"""The relay's librdkafka retry.backoff.ms. At librdkafka's default (100 ms, the port's) a
transaction that starts right after the previous commit meets CONCURRENT_TRANSACTIONS on
AddOffsetsToTxn and waits out the whole backoff: send_offsets took 111 ms a transaction in the
relay (the router, with milliseconds of CPU between commit and send_offsets, mostly misses it).
The baseline is the floor, so it does not pay that wait."""


class RelayProcess(ChildProcess):
    """`python -m bench.raw_relay` in a child process: the latency rows' raw baseline."""

    def __init__(self, settings: KafkaSettings, files: Files, topics: RelayTopics, name: str) -> None:
        self.topics = topics
        self.stats_path = files.logs / f"{name}.stats.json"
        self.log = (files.logs / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.raw_relay", "--bootstrap", settings.bootstrap, "--topics",
             topics.input.rsplit(".", 1)[1], "--group", f"bench-raw-relay-{tag()}", "--stats",
             str(self.stats_path), "--until-stopped", "--retry-backoff-ms", str(RELAY_RETRY_BACKOFF_MS)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def stats(self) -> dict[str, Any]:
        return read_stats(self.stats_path) or {"transactions": 0, "records": 0, "seconds": 0.0}

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"raw relay exited with {self.proc.returncode}; see {self.log.name}")
            if read_stats(self.stats_path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"raw relay not ready within {timeout:g} s; see {self.log.name}")

@dataclass
class Target:
    """Where offered_load sends and reads, and how to read the process's CPU and batches."""

    input: str | None  # None: each record's own topic (the router reads the alert topics)
    feed: str
    cpu: Callable[[], float]
    batches: Callable[[], tuple[float, float, float]]  # seconds in batches, batches, records


def router_target(router: RouterProcess) -> Target:
    return Target(None, FEED, router.cpu,
                  lambda: (router.metric("bus_router_batch_seconds_sum"),
                           router.metric("bus_router_batch_seconds_count"),
                           router.metric("bus_router_batch_records_total")))


def relay_target(relay: RelayProcess) -> Target:
    def batches() -> tuple[float, float, float]:
        doc = relay.stats()
        return float(doc["seconds"]), float(doc["transactions"]), float(doc["records"])

    return Target(relay.topics.input, relay.topics.feed, relay.cpu, batches)


def offered_load(bootstrap: str, records: list[SealedRecord], rate: int, target: Target,
                 producer: Any = None) -> dict[str, Any]:
    """Offer `records` at `rate` per second to `target` and time each to its feed. Pass one
    `producer` for every row: a new one's first sends wait for its producer id and metadata."""
    arrivals: dict[bytes, float] = {}
    stop, ready = threading.Event(), threading.Event()
    reader = threading.Thread(target=_feed_reader, args=(bootstrap, target.feed, arrivals, stop, ready), daemon=True)
    reader.start()
    ready.wait(30)
    if producer is None:
        producer = raw_confluent_producer(bootstrap)
    for topic in {target.input or r.topic for r in records[:1]}:
        producer.list_topics(topic, timeout=10)  # metadata and connection before the clock starts
    sent: dict[bytes, float] = {}
    cpu0 = target.cpu()
    batches0 = target.batches()
    start = time.perf_counter()
    for i, r in enumerate(records):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            producer.poll(min(0.002, due - now))
        ce_id = dict(r.headers)["ce_id"]
        sent[ce_id] = time.perf_counter()
        producer.produce(target.input or r.topic, r.value, r.key, headers=r.headers)
        producer.poll(0)
    producer.flush(60)
    offered_s = time.perf_counter() - start
    deadline = time.monotonic() + 60
    while len(arrivals) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)
    cpu = target.cpu() - cpu0
    deadline = time.monotonic() + 5  # the relay writes its counters once idle
    while (batches1 := target.batches())[2] - batches0[2] < len(arrivals) and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds, count, inputs = (b1 - b0 for b1, b0 in zip(batches1, batches0, strict=True))
    stop.set()
    reader.join(10)
    latencies = [(arrivals[k] - t) * 1000 for k, t in sent.items() if k in arrivals]
    return {
        "offered_per_s": rate, "achieved_per_s": len(records) / offered_s, "alerts": len(records),
        "arrived": len(latencies), "p50_ms": _percentile(latencies, 0.50), "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99), "max_ms": max(latencies),
        "router_cpu_share": cpu / offered_s,
        "batches": int(count), "mean_batch_records": inputs / count if count else 0.0,
        "mean_batch_ms": seconds / count * 1000 if count else 0.0,
    }


def _route_backlog(b: RouterProcess, settings: KafkaSettings, records: list[SealedRecord], first: int,
                   second: int) -> tuple[dict[str, float], tuple[float, float, float, float, float, int]]:
    """Time router `b`'s start after `first` alerts, then sample its RSS while it routes `second` more."""
    listening_small = b.wait_listening()
    restart_small = b.wait_ready(6)
    restore_small = b.metric("bus_router_restore_seconds_sum")
    rss: dict[str, float] = {"start_mib": b.rss()}
    cpu0 = b.cpu()
    t0 = time.perf_counter()
    blast(settings.bootstrap, records[first:])
    marks = {10_000: "at_10k_mib", second // 2: "at_half_mib", second: "at_end_mib"}
    peak = [0.0]

    def sample(done: int) -> None:
        current = b.rss()
        peak[0] = max(peak[0], current)
        for mark, name in marks.items():
            if done >= mark and name not in rss:
                rss[name] = current

    t1 = wait_handled([b], second, on_sample=sample)
    rss["peak_mib"] = peak[0]
    return rss, (listening_small, restart_small, restore_small, second / (t1 - t0), b.cpu() - cpu0, b.rejected())


WARMUP_ALERTS, WARMUP_RATE = 600, 200


def latency_rows(bus: Bus, settings: KafkaSettings, files: Files, signer: SigningKey, factory: AlertFactory,
                 rates: tuple[int, ...], seconds: float, log: Any = print) -> list[dict[str, Any]]:
    """End-to-end latency at fixed offered rates: the raw relay, then one router (its own group,
    started at the end), with the same pre-sealed records at each rate. Each row is the router's,
    with the relay's figures under "raw"."""
    relay_topics = RelayTopics.for_tag(tag())
    bus.ensure_topics(relay_topics.specs(Replication.for_cluster(1)))
    group = f"bench-latency-{tag()}"
    start_at_end(bus.engine, group)
    relay = RelayProcess(settings, files, relay_topics, "raw-relay")
    router = RouterProcess(settings, files, group, "latency")
    rows = []
    try:
        relay.wait_ready()
        router.wait_ready(6)
        raw, bus_target = relay_target(relay), router_target(router)
        # Unmeasured warm-up: a new router's first transactions (and, on a fresh broker, the JVM's
        # first produce/marker paths) take ~1 s, which would be the p99 of a 12 s row.
        log("  warm-up (not measured)")
        warmup = seal_all(factory.make(WARMUP_ALERTS), signer)
        load = raw_confluent_producer(settings.bootstrap)
        offered_load(settings.bootstrap, warmup, WARMUP_RATE, raw, load)
        offered_load(settings.bootstrap, warmup, WARMUP_RATE, bus_target, load)
        for rate in rates:
            batch = seal_all(factory.make(int(rate * seconds)), signer)
            log(f"  latency at {rate}/s: raw relay")
            steps0 = relay.stats()
            raw_row = offered_load(settings.bootstrap, batch, rate, raw, load)
            steps1, txns = relay.stats(), max(1, raw_row["batches"])
            raw_row.update({f"mean_{step}_ms": (steps1.get(f"{step}_seconds", 0.0) - steps0.get(f"{step}_seconds", 0.0))
                            / txns * 1000 for step in ("offsets", "commit")})
            log(f"  latency at {rate}/s: router")
            rows.append({**offered_load(settings.bootstrap, batch, rate, bus_target, load),
                         "raw": {**raw_row, "retry_backoff_ms": RELAY_RETRY_BACKOFF_MS}})
    finally:
        router.stop()
        relay.stop()
    return rows


def bench_latency(settings: KafkaSettings, work: Path, *, seconds: float = 12.0,
                  rates: tuple[int, ...] = (100, 500, 1000), log: Any = print) -> dict[str, Any]:
    """Only the latency rows (`python -m bench --only latency`): a minute or two to iterate on."""
    bus = Bus(settings.model_copy(update={"engine": "confluent"}))
    ensure_router_topics(bus.engine)
    signer = new_signer()
    files = prepare(work, signer)
    return {"latency": latency_rows(bus, settings, files, signer, AlertFactory(), rates, seconds, log)}


# -- the fleet run ---------------------------------------------------------------------------------


def bench_fleet(settings: KafkaSettings, work: Path, *, history: tuple[int, int] = (10_000, 100_000),
                burst: int = 20_000, latency_seconds: float = 12.0, rates: tuple[int, ...] = (100, 500, 1000),
                log: Any = print) -> dict[str, Any]:
    bus = Bus(settings.model_copy(update={"engine": "confluent"}))
    ensure_router_topics(bus.engine)
    signer = new_signer()
    files = prepare(work, signer)
    factory = AlertFactory()
    out: dict[str, Any] = {}

    # RSS and restart: one group, one state directory (the instance's stores are its cache)
    group = f"bench-fleet-{tag()}"
    start_at_end(bus.engine, group)
    first, second = history
    log(f"  sealing {first + second:,} alerts")
    records = seal_all(factory.make(first + second), signer)
    blast(settings.bootstrap, records[:first])
    a = RouterProcess(settings, files, group, "fleet-a")
    try:
        a.wait_ready(6)
        wait_handled([a], first)
    finally:
        a.stop()
    log(f"  routed {first:,}; restarting")
    b = RouterProcess(settings, files, group, "fleet-b")
    try:
        rss, timing = _route_backlog(b, settings, records, first, second)
    finally:
        b.stop()
    log(f"  routed {second:,} more; restarting")
    c = RouterProcess(settings, files, group, "fleet-c")
    try:
        listening_large = c.wait_listening()
        restart_large = c.wait_ready(6)
        restore_large = c.metric("bus_router_restore_seconds_sum")
    finally:
        c.stop()
    del records
    listening_small, restart_small, restore_small, routed_s, b_cpu, b_rejected = timing
    out["rss"] = {**rss, "alerts": second, "growth_half_to_end": rss["at_end_mib"] / rss["at_half_mib"] - 1,
                  "routed_per_s": routed_s, "cpu_us_per_record": b_cpu / second * 1e6,
                  "rejected": b_rejected}
    out["restart"] = {"history": list(history), "after_small_s": restart_small,
                      "after_large_s": restart_large, "history_routed": [first, first + second],
                      "listening_s": [listening_small, listening_large],
                      "restore_s": [restore_small, restore_large]}

    out["latency"] = latency_rows(bus, settings, files, signer, factory, rates, latency_seconds, log)

    # scaling: the same burst to one router, then to two
    out["scaling"] = []
    for count in (1, 2):
        log(f"  burst of {burst:,} to {count} router(s)")
        group = f"bench-scale{count}-{tag()}"
        start_at_end(bus.engine, group)
        routers = [RouterProcess(settings, files, group, f"scale{count}-{i}") for i in range(count)]
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:  # both hold tasks: the group has settled
                docs = [r.ready() for r in routers]
                if all(d and d.get("tasks") for d in docs) and sum(len(d["tasks"]) for d in docs if d) == 6:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("routers did not share the 6 tasks in time")
            batch = seal_all(factory.make(burst), signer)
            cpu0s = [r.cpu() for r in routers]
            t0 = time.perf_counter()
            blast(settings.bootstrap, batch)
            t1 = wait_handled(routers, burst)
            cpus = [r.cpu() - c0 for r, c0 in zip(routers, cpu0s, strict=True)]
            out["scaling"].append({"routers": count, "alerts": burst, "per_s": burst / (t1 - t0),
                                   "cpu_us_per_record": sum(cpus) / burst * 1e6,
                                   "cpu_share_per_router": [c / (t1 - t0) for c in cpus]})
        finally:
            for r in routers:
                r.stop()
    one, two = out["scaling"]
    out["scaling_ratio"] = two["per_s"] / one["per_s"]
    return out
