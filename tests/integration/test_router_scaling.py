"""Many routers, one federation (issue 11): processes killed, restarted, added and removed under a
steady stream, on the real broker. Each alert must reach each feed the policy names exactly once,
and the audit trail must verify."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.adapters.kafka import Engine, open_engine
from bus.config import KafkaSettings
from bus.core.topology import AUDIT_TOPIC
from tests.helpers import REPO, run_bus, wait_for
from tests.router_support import (
    NEUTRAL,
    demo_federation,
    ensure_router_topics,
    feed_ids,
    policy_doc,
    read,
    router_command,
    sealed,
    send_all,
    spread_alert,
    start_at_end,
)

ES = {**NEUTRAL, "countries": ["ES"]}


@pytest.fixture(scope="module")
def world(kafka, tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("scaling")
    fed = demo_federation(base / "federation")
    suffix = os.urandom(3).hex()
    policy = base / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(f"feed.s{suffix}.")))
    engine = open_engine(kafka)
    ensure_router_topics(engine)
    return {"base": base, "fed": fed, "policy": policy, "suffix": suffix, "engine": engine,
            "feed": f"feed.s{suffix}.es-customs",
            "trust": ["--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub)]}


class RouterProcess:
    """One `bus router run` process, its log in a file."""

    def __init__(self, world: dict[str, Any], kafka: KafkaSettings, group: str, state: Path, name: str,
                 engine: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.log_path = world["base"] / f"{group}-{name}-{time.monotonic_ns()}.log"
        cmd = router_command(world["fed"], world["policy"], state, group=group,
                             extra=["--session-timeout", "6", "--checkpoint-every", "50", *extra])
        env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap, **({"BUS_KAFKA_ENGINE": engine} if engine else {})}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def routed(self) -> int:
        return sum(e.get("routed", 0) for e in self.lines() if e.get("event") == "batch")

    def restored(self) -> bool:
        return any(e.get("event") == "tasks restored" for e in self.lines())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout: float = 90) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


class Stream:
    """Publishes `count` fresh alerts at about `rate` per second on a thread."""

    def __init__(self, world: dict[str, Any], count: int, rate: float) -> None:
        signer = world["fed"].signers["EUROPOL"]
        self.alerts = [sealed(spread_alert("EUROPOL", **ES), signer) for _ in range(count)]
        self.ids = {dict(a.headers)["ce_id"].decode() for a in self.alerts}
        self._engine: Engine = world["engine"]
        self._rate = rate
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            step = 10
            for i in range(0, len(self.alerts), step):
                send_all(self._engine, self.alerts[i:i + step])
                time.sleep(step / self._rate)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def join(self) -> None:
        self.thread.join(120)
        if self.error is not None:
            raise self.error


def assert_exactly_once(world: dict[str, Any], kafka: KafkaSettings, ids: set[str]) -> None:
    delivered = feed_ids(world["engine"], world["feed"])
    missing = ids - set(delivered)
    assert not missing, f"{len(missing)} alert(s) never delivered"
    assert max(delivered[i] for i in ids) == 1, "an alert was delivered twice"
    audited = Counter(e["message_id"] for r in read(world["engine"], AUDIT_TOPIC)
                      if (e := json.loads(r.value or b"")).get("kind") == "decision"
                      and isinstance(e.get("message_id"), str))  # hostile records have bounded claims
    assert {audited[i] for i in ids} == {1}, "an alert was audited other than once"
    result = run_bus("audit", "verify", *world["trust"], settings=kafka)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def delivered(world: dict[str, Any], ids: set[str]) -> int:
    return len(ids & set(feed_ids(world["engine"], world["feed"])))


@pytest.mark.parametrize("engine", ["confluent", "kafka-python"])
def test_exactly_once_when_the_router_is_killed_mid_stream(kafka, world, tmp_path, engine):
    """SIGKILL the router mid-stream, restart it: each alert exactly once per feed, on both engines."""
    group = f"kill-{engine}-{world['suffix']}"
    start_at_end(world["engine"], group)
    alerts = [sealed(spread_alert("EUROPOL", **ES), world["fed"].signers["EUROPOL"]) for _ in range(300)]
    ids = set(send_all(world["engine"], alerts))
    first = RouterProcess(world, kafka, group, tmp_path / "state", "first", engine, ("--batch-size", "10"))
    try:  # its log, not the feed: reading the feed takes longer than routing all 300 (the kill came too late)
        wait_for(lambda: first.routed() >= 30, 120, "the first alerts to be routed")
    finally:
        first.kill()
    before = delivered(world, ids)
    assert 0 < before < len(ids), f"the kill was not mid-stream ({before}/{len(ids)})"
    second = RouterProcess(world, kafka, group, tmp_path / "state", "second", engine, ("--batch-size", "10"))
    try:  # awaited, not an idle timeout: the restarted router is done once the last alert is on the feed
        wait_for(lambda: delivered(world, ids) == len(ids) or second.proc.poll() is not None, 240,
                 "the restarted router to route the rest")
    finally:
        code = second.terminate()  # a clean stop (final checkpoints), as --exit-when-idle would
    assert code == 0, second.log_path.read_text()[-3000:]
    assert_exactly_once(world, kafka, ids)


def test_two_routers_one_killed_and_restarted_with_a_rebalance(kafka, world, tmp_path):
    group = f"pair-{world['suffix']}"
    start_at_end(world["engine"], group)
    state = tmp_path / "state"
    a = RouterProcess(world, kafka, group, state, "a")
    b = RouterProcess(world, kafka, group, state, "b")
    wait_for(lambda: a.restored() and b.restored(), 90, "both routers to hold tasks")
    stream = Stream(world, 500, 40)
    processes = [a, b]
    try:
        wait_for(lambda: delivered(world, stream.ids) >= 60, 90, "routing to start")
        a.kill()
        a = RouterProcess(world, kafka, group, state, "a-again")  # takes its slot (and identity) back
        processes.append(a)
        c = RouterProcess(world, kafka, group, state, "c")  # a third member: the group rebalances
        processes.append(c)
        wait_for(lambda: c.restored(), 90, "the third router to take tasks")
        assert c.terminate() == 0
        stream.join()
        wait_for(lambda: delivered(world, stream.ids) == len(stream.ids), 180, "every alert to be routed")
    finally:
        for p in processes:
            if p.proc.poll() is None:
                p.terminate()
    assert b.routed() > 0 and a.routed() > 0
    assert_exactly_once(world, kafka, stream.ids)


def test_scale_from_one_to_three_and_back_under_a_steady_stream(kafka, world, tmp_path):
    group = f"scale-{world['suffix']}"
    start_at_end(world["engine"], group)
    state = tmp_path / "state"
    first = RouterProcess(world, kafka, group, state, "1")
    wait_for(first.restored, 90, "the first router to hold tasks")
    stream = Stream(world, 600, 40)
    extra: list[RouterProcess] = []
    try:
        wait_for(lambda: delivered(world, stream.ids) >= 60, 90, "routing to start")
        extra = [RouterProcess(world, kafka, group, state, "2"), RouterProcess(world, kafka, group, state, "3")]
        wait_for(lambda: all(p.routed() > 0 for p in extra), 120, "the added routers to route")
        for p in extra:
            assert p.terminate() == 0
        stream.join()
        wait_for(lambda: delivered(world, stream.ids) == len(stream.ids), 180, "every alert to be routed")
    finally:
        for p in [first, *extra]:
            if p.proc.poll() is None:
                p.terminate()
    assert first.routed() > 0
    assert_exactly_once(world, kafka, stream.ids)
