"""Hostile records never stop, wedge or fool the router (issue 9), on both engines, on the real broker.

An attacker with WRITE on one alert topic writes whole records no client would: huge
envelope headers, values near the broker's limit, header names that are not UTF-8, forged
reject headers, nulls. Each stopper of issue 9 has a regression test; a hypothesis fuzzer
then mixes hostile records with valid signed alerts through one running router and checks
that every input gets exactly one definite outcome and the audit trail stays whole.

Records are written with `write_hostile` (a raw Produce request, one batch per record).
"""

from __future__ import annotations

import faulthandler
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.adapters.federation_file import DemoFederation
from bus.adapters.kafka import Engine, Record, TopicPartition, open_engine, text_headers, wire_headers
from bus.adapters.kafka.reading import read_to_end
from bus.adapters.kafka.testing import HostileRecord, write_hostile
from bus.config import KafkaSettings
from bus.core.placement import partition_for
from bus.core.policy import Policy, parse_policy
from bus.core.signing import COVERED_HEADERS
from bus.core.topology import ACKS_TOPIC, AUDIT_TOPIC, DLQ_TOPIC
from bus.core.trust import FreshnessPolicy
from bus.services.router import Router, RouterIdentity, RouterOptions, RouterStats
from bus.services.routing import route
from tests.helpers import CODES, REPO, SCHEMAS, run_bus, wait_for
from tests.router_support import (
    NEUTRAL,
    demo_federation,
    ensure_router_topics,
    policy_doc,
    read,
    run_until,
    sealed,
    spread_alert,
    start_at_end,
)

TOPIC = "alerts.corruption-indicator"
ES = {**NEUTRAL, "countries": ["ES"]}
FUZZ_EXAMPLES = int(os.environ.get("BUS_TEST_FUZZ_EXAMPLES", "200"))
"""Hypothesis examples per engine (each 1-6 records); raise it for a longer run."""


@dataclass
class Running:
    """A router routing in a background thread for the whole module, on one engine.

    Only one router group may write the audit chains at a time (two groups would each own
    task p and fork chain p), so a test that runs routers of its own pauses this one.
    """

    engine_name: str
    settings: KafkaSettings
    engine: Engine
    fed: DemoFederation
    policy: Policy
    group: str
    options: RouterOptions
    router: Router | None = None
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)
    since: dict[str, dict[int, int]] = field(default_factory=dict)
    """Where the shared DLQ and audit topics ended when this module's router started: every
    outcome of a record these tests write lies after it (earlier tests' records are skipped)."""

    def mark(self) -> None:
        probe = self.engine.consumer()
        try:
            self.since = {t: {p: probe.watermarks(TopicPartition(t, p))[1] for p in range(6)}
                          for t in (DLQ_TOPIC, AUDIT_TOPIC)}
        finally:
            probe.close()

    def read_since(self, topic: str) -> list[Record]:
        """`topic`'s records from the mark on (DLQ, audit: topics every router test writes to)."""
        polled = read_to_end(self.engine, topic, start=self.since[topic], timeout=60.0)
        return [x for x in polled if isinstance(x, Record)]

    def start(self) -> None:
        assert self.fed.router_signer is not None
        router = self.router = Router(self.engine, lambda: (self.policy, self.fed.directory),
                                      RouterIdentity(self.fed.router_id, self.fed.router_signer), self.options)

        def run() -> None:
            try:
                router.run()
            except BaseException as exc:
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, daemon=True, name=f"router-{self.engine_name}")
        self.thread.start()
        wait_for(lambda: router._ready or self.errors, 90, "the router to hold its tasks")

    def stop(self) -> None:
        if self.router is not None and self.thread is not None:
            self.router.stop()
            self.thread.join(60)
        assert not self.errors, self.errors

    def alive(self) -> bool:
        assert self.thread is not None
        return self.thread.is_alive() and not self.errors

    def caught_up(self, topics: tuple[str, ...] = (TOPIC, ACKS_TOPIC), group: str | None = None) -> bool:
        """The group's committed offsets have reached the end of every partition of `topics`."""
        consumer = self.engine.consumer(group_id=group or self.group)
        probe = self.engine.consumer()
        try:
            tps = [TopicPartition(t, p) for t in topics for p in range(6)]
            committed = consumer.committed(tps)
            return all((committed[tp] or 0) >= probe.watermarks(tp)[1] for tp in tps)
        finally:
            consumer.close()
            probe.close()

    def valid(self) -> tuple[str, bytes, bytes, Any]:
        return _wire(sealed(spread_alert("EUROPOL", **ES), self.fed.signers["EUROPOL"]))


def _wire(record: Any) -> tuple[str, bytes, bytes, Any]:
    return record.topic, record.key, record.value, wire_headers(record.headers)


@pytest.fixture(scope="module", params=["confluent", "kafka-python"])
def running(request, kafka, tmp_path_factory) -> Iterator[Running]:
    name = request.param
    settings_ = kafka.model_copy(update={"engine": name})
    engine = open_engine(settings_)
    ensure_router_topics(engine)
    base = tmp_path_factory.mktemp(f"hardening-{name}")
    fed = demo_federation(base / "federation")
    suffix = os.urandom(3).hex()
    policy = parse_policy(policy_doc(f"feed.h{suffix}."))
    group = f"hardening-{name}-{suffix}"
    start_at_end(engine, group)
    r = Running(name, settings_, engine, fed, policy, group,
                RouterOptions(state_dir=base / "state", group_id=group, checkpoint_every=200))
    r.mark()
    r.start()
    yield r
    r.stop()


def outcomes(r: Running, coords: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], dict[str, Any]]:
    """What became of each input: its dead letters, its audit entries, its feed copies."""
    out: dict[tuple[str, int, int], dict[str, Any]] = {c: {"dlq": [], "audit": [], "feeds": Counter()} for c in coords}
    for d in r.read_since(DLQ_TOPIC):
        h = dict(d.headers)
        try:
            c = (h[b"bus_source_topic"].decode(), int(h[b"bus_source_partition"]), int(h[b"bus_source_offset"]))
        except (KeyError, ValueError, AttributeError):
            continue
        if c in out:
            out[c]["dlq"].append(d)
    ids: dict[str, tuple[str, int, int]] = {}
    for a in r.read_since(AUDIT_TOPIC):
        e = json.loads(a.value or b"")
        src = e.get("source") or {}
        c = (src.get("topic"), src.get("partition"), src.get("offset"))
        if c in out:
            out[c]["audit"].append(e)
            if e.get("outcome") == "routed":
                ids[e["message_id"]] = c
    for partner in r.policy.partners:
        for f in read(r.engine, partner.feed):
            mid = (f.header_values(b"ce_id") or [None])[0]
            if mid is not None and mid.decode() in ids:
                out[ids[mid.decode()]]["feeds"][partner.id] += 1
    return out


def dead_letter_reason(d: Record) -> str:
    return dict(d.headers)[b"bus_reject_reason"].decode()


def write(r: Running, partition: int, *records: HostileRecord, topic: str = TOPIC) -> list[tuple[str, int, int]]:
    first = write_hostile(r.settings, topic, partition, list(records))
    return [(topic, partition, first + i) for i in range(len(records))]


def settle(r: Running) -> None:
    try:
        wait_for(lambda: not r.alive() or r.caught_up(), 120, "the router to route everything written")
    except AssertionError:
        faulthandler.dump_traceback(all_threads=True)  # where the router is stuck, for the CI log
        raise
    assert r.alive(), f"the router stopped: {r.errors}"


# -- the three stoppers of issue 9 ----------------------------------------------------------------


def test_over_long_envelope_headers_are_bounded_and_routing_goes_on(running):
    r = running
    _topic, key, value, headers = r.valid()
    p = partition_for(key, 6)
    swapped = [(n, b"x" * 200_000 if n == b"ce_id" else v) for n, v in headers]  # routed path: under 256 KiB
    huge = [(n, b"y" * 512 * 1024 if n == b"ce_id" else v) for n, v in headers]  # over: not even verified
    control = [(b"ce_source", b"\x01" * 220_000), (b"bus_keyid", b"k" * 30_000)]
    coords = write(r, p, HostileRecord(value, key, swapped), HostileRecord(value, key, huge),
                   HostileRecord(b"v", b"k", control))
    _t2, k2, v2, h2 = r.valid()
    after = write(r, partition_for(k2, 6), HostileRecord(v2, k2, list(h2)))
    settle(r)
    found = outcomes(r, set(coords + after))
    reasons = [dead_letter_reason(found[c]["dlq"][0]) for c in coords]
    assert reasons == ["bad-schema", "oversized", "bad-signature"]
    for c in coords:
        [entry] = found[c]["audit"]
        assert len(json.dumps(entry)) < 4096
        assert not isinstance(entry["message_id"], str) or len(entry["message_id"]) <= 128
    assert found[after[0]]["feeds"] == {"ES-CUSTOMS": 1}
    assert r.router is not None and r.router.stats.recoveries == 0


def test_a_value_near_the_broker_limit_does_not_wedge_its_partition(running):
    r = running
    near = write(r, 3, HostileRecord(b"z" * 1_048_400, b"k"))
    _, key, value, headers = r.valid()
    p = partition_for(key, 6)
    wedged_before = write(r, p, HostileRecord(b"z" * 1_048_400, key))
    after = write(r, p, HostileRecord(value, key, list(headers)))
    settle(r)
    found = outcomes(r, set(near + wedged_before + after))
    for c in near + wedged_before:
        [d] = found[c]["dlq"]
        form = json.loads(d.value or b"")
        assert form["reason"] == "oversized" and form["value"]["len"] == 1_048_400 and d.key is None
    assert found[after[0]]["feeds"] == {"ES-CUSTOMS": 1}


def run_until_caught_up(r: Running, router: Router, group: str) -> RouterStats:
    """Run `router` (group `group`) until its committed offsets reach the end of what was written,
    then stop it as `run` stops: awaiting that, not an idle timeout, is what says it is done."""
    return run_until(router, lambda: r.caught_up(group=group), f"router group {group} to route everything written")


def test_a_header_name_that_is_not_utf8_is_undecodable_not_fatal_on_start_and_restart(running, tmp_path):
    """The bad record is the first thing a fresh router reads; a second fresh router reads it again."""
    r = running
    _, key, value, headers = r.valid()
    p = partition_for(key, 6)
    settle(r)
    r.stop()  # the fresh routers below own every task meanwhile
    for attempt in range(2):
        group = f"utf8-{r.engine_name}-{attempt}-{os.urandom(3).hex()}"
        start_at_end(r.engine, group)
        if attempt == 0:
            bad = write(r, p, HostileRecord(b"v", b"k", [(b"\xff\xfe", b"x")]))
            good = write(r, p, HostileRecord(value, key, list(headers)))
        fresh = Router(r.engine, lambda: (r.policy, r.fed.directory),
                       RouterIdentity(r.fed.router_id, r.fed.router_signer),  # type: ignore[arg-type]
                       RouterOptions(state_dir=tmp_path / f"state-{attempt}", group_id=group, instance=f"u{attempt}"))
        if attempt == 1:  # re-read from before the bad record
            consumer = r.engine.consumer(group_id=group)
            consumer.commit({TopicPartition(TOPIC, p): bad[0][2]})
            consumer.close()
        stats = run_until_caught_up(r, fresh, group)
        assert stats.by_reason.get("undecodable") == 1, stats
        assert stats.routed >= (1 if attempt == 0 else 0)
    r.start()
    settle(r)
    found = outcomes(r, set(bad + good))
    assert next(json.loads(d.value or b"")["reason"] for d in found[bad[0]]["dlq"]) == "undecodable"


def test_forged_reject_headers_are_stripped_and_nulls_kept(running):
    r = running
    _, key, value, headers = r.valid()
    forged = [*headers, (b"bus_reject_reason", b"none"), (b"bus_source_offset", b"0"), (b"x-null", None)]
    tampered = value[:-3] + bytes([value[-3] ^ 1]) + value[-2:]
    [c] = write(r, partition_for(key, 6), HostileRecord(tampered, key, forged))
    settle(r)
    [d] = outcomes(r, {c})[c]["dlq"]
    assert d.header_values(b"bus_reject_reason") == [b"bad-signature"]
    assert d.header_values(b"bus_source_offset") == [str(c[2]).encode()]
    if r.engine.capabilities.null_header_values:
        assert d.header_values(b"x-null") == [None] and d.value == tampered and d.key == key
    else:  # kafka-python cannot send a null header value: the bounded form, no bisection
        assert dead_letter_reason(d) == "bad-signature" and json.loads(d.value or b"")["form"] == "bounded"


# -- the fuzzer ---------------------------------------------------------------------------------------------

COVERED = [n.encode() for n in COVERED_HEADERS]
names = st.one_of(st.sampled_from([*COVERED, b"bus_sig", b"bus_reject_reason", b"bus_source_topic", b"bus_route_rule",
                                   b""]), st.binary(max_size=24))
small = st.one_of(st.none(), st.just(b""), st.binary(max_size=48))
big = st.integers(2_000, 400_000).map(lambda n: b"\xab" * n)
header_lists = st.one_of(
    st.lists(st.tuples(names, st.one_of(small, small, big)), max_size=10),
    st.integers(1_000, 4_000).map(lambda n: [(b"h%d" % i, b"x") for i in range(n)]),
)


@st.composite
def inputs(draw: st.DrawFn) -> dict[str, Any]:
    """One input: a raw hostile record, a valid alert bent one way, or a clean valid alert."""
    kind = draw(st.sampled_from(["hostile", "hostile", "bent", "valid"]))
    partition = draw(st.integers(0, 5))
    if kind == "hostile":
        return {"kind": kind, "topic": draw(st.sampled_from([TOPIC, TOPIC, ACKS_TOPIC])), "partition": partition,
                "key": draw(st.one_of(small, big.map(lambda b: b[:100_000]))),
                "value": draw(st.one_of(small, big, st.integers(900_000, 1_040_000).map(lambda n: b"\x00" * n))),
                "headers": draw(header_lists)}
    bend = draw(st.sampled_from(["extra headers", "drop covered", "repeat covered", "null covered", "move",
                                 "rekey", "flip value"])) if kind == "bent" else None
    return {"kind": kind, "bend": bend, "partition": partition, "extra": draw(header_lists),
            "pick": draw(st.integers(0, len(COVERED) - 1))}


def realise(r: Running, spec: dict[str, Any]) -> tuple[str, int, HostileRecord]:
    if spec["kind"] == "hostile":
        return spec["topic"], spec["partition"], HostileRecord(spec["value"], spec["key"], spec["headers"])
    topic, key, value, headers = r.valid()
    headers = list(headers)
    partition = partition_for(key, 6)
    name = COVERED[spec["pick"]]
    bend = spec["bend"]
    if bend == "extra headers":
        headers += spec["extra"][:50]
    elif bend == "drop covered":
        headers = [h for h in headers if h[0] != name]
    elif bend == "repeat covered":
        headers += [h for h in headers if h[0] == name]
    elif bend == "null covered":
        headers = [(n, None if n == name else v) for n, v in headers]
    elif bend == "move":
        partition = (partition + 1 + spec["partition"] % 5) % 6
    elif bend == "rekey":
        key = key + b"-x"
    elif bend == "flip value":
        value = value[:20] + bytes([value[20] ^ 0x55]) + value[21:]
    return topic, partition, HostileRecord(value, key, headers)


def expected(r: Running, topic: str, partition: int, rec: HostileRecord) -> tuple[str | None, set[str] | None]:
    """(reject reason | None if routed, recipients | None if only 'one outcome' can be said)."""
    headers = list(rec.headers)
    size = len(rec.key or b"") + len(rec.value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
    try:
        for n, _ in headers:
            n.decode("utf-8")
    except UnicodeDecodeError:
        return "undecodable", set()
    if size > 256 * 1024:
        return "oversized", set()
    if any(b"\x00" in n for n, _ in headers) or topic == ACKS_TOPIC:
        return None, None  # the engine may change names at a NUL; acks: any verdict, once
    result = route(rec.key, rec.value, text_headers(tuple(headers)), resolver=r.fed.directory, policy=r.policy,
                   feed_topics=r.policy.feeds(), freshness=FreshnessPolicy(), seen=lambda _: False,
                   now=datetime.now(UTC), schemas=SCHEMAS, empact_codes=CODES, topic=topic, partition=partition,
                   partitions=6, key_owners=r.fed.directory)
    if result.accepted:
        copies = [(*[h for h in headers if h[0] != b"bus_route_rule"], (b"bus_route_rule", b"r"))]
        if any(r.engine.capabilities.cannot_send(rec.key, rec.value, tuple(h)) for h in copies):
            return "internal-error", set()
        return None, set(result.recipients)
    return str(result.reason), set()


# kafka-python's IO threads (of the router running meanwhile) draw backoff jitter from `random`
# while hypothesis generates, which hypothesis cannot tell from a strategy using it.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_fuzzed_hostile_records_mixed_with_valid_alerts(running, tmp_path, kafka):
    """Whole hostile records and valid alerts through the running router: each input routed exactly
    once to each feed the policy names, or dead-lettered exactly once with a reason; one audit entry
    per input; the router up and routing; `bus audit verify` passes."""
    r = running
    written: list[tuple[tuple[str, int, int], str, HostileRecord, tuple[str | None, set[str] | None]]] = []
    started = time.monotonic()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.function_scoped_fixture])
    @given(st.lists(inputs(), min_size=1, max_size=6))
    def fuzz(specs: list[dict[str, Any]]) -> None:
        for spec in specs:
            topic, partition, rec = realise(r, spec)
            size = len(rec.key or b"") + len(rec.value or b"") + sum(len(n) + len(v or b"") for n, v in rec.headers)
            if size + 64 * len(rec.headers) > 1_046_000:
                continue  # over what the broker takes in one request: not a record anyone can write
            [c] = write(r, partition, rec, topic=topic)
            written.append((c, spec["kind"], rec, expected(r, topic, partition, rec)))

    fuzz()
    _, key, value, headers = r.valid()
    [last] = write(r, partition_for(key, 6), HostileRecord(value, key, list(headers)))
    settle(r)
    found = outcomes(r, {c for c, *_ in written} | {last})
    assert found[last]["feeds"] == {"ES-CUSTOMS": 1}, "the router stopped routing"
    by_reason: Counter[str] = Counter()
    problems = []
    for c, kind, _rec, (reason, recipients) in written:
        got = found[c]
        if len(got["audit"]) != 1:
            problems.append(f"{c} ({kind}): {len(got['audit'])} audit entries")
            continue
        routed = got["audit"][0]["outcome"] == "routed"
        if routed:
            by_reason["routed"] += 1
            if got["dlq"] or (recipients is not None and dict(got["feeds"]) != {p: 1 for p in recipients}):
                problems.append(f"{c} ({kind}): routed to {dict(got['feeds'])}, expected {recipients}")
            if reason is not None and recipients is not None:
                problems.append(f"{c} ({kind}): routed, expected {reason}")
            continue
        if len(got["dlq"]) != 1 or got["feeds"]:
            problems.append(f"{c} ({kind}): {len(got['dlq'])} dead letters, feeds {dict(got['feeds'])}")
            continue
        actual = dead_letter_reason(got["dlq"][0])
        by_reason[actual] += 1
        if recipients is not None and actual != reason:
            problems.append(f"{c} ({kind}): dead-lettered {actual}, expected {reason or 'routed'}")
    audit = run_bus("audit", "verify", "--federation", str(r.fed.directory_path), "--authority-pub",
                    str(r.fed.authority_pub), settings=kafka)
    sizes = [len(rec.key or b"") + len(rec.value or b"") + sum(len(n) + len(v or b"") for n, v in rec.headers)
             for _, _, rec, _ in written]
    report = {
        "engine": r.engine_name, "records": len(written), "seconds": round(time.monotonic() - started, 1),
        "kinds": dict(Counter(k for _, k, _, _ in written)), "outcomes": dict(by_reason),
        "largest_record_bytes": max(sizes), "most_headers": max(len(rec.headers) for _, _, rec, _ in written),
        "largest_header_value_bytes": max((len(v or b"") for _, _, rec, _ in written for _, v in rec.headers),
                                          default=0),
        "recoveries": r.router.stats.recoveries if r.router else None,
        "bisections": r.router.stats.bisections if r.router else None,
    }
    reports = REPO / "var" / "test-reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"router-fuzz-{r.engine_name}.json").write_text(json.dumps(report, indent=2))
    print(f"\nrouter fuzz report: {json.dumps(report)}")
    assert not problems, "\n".join(problems[:30])
    assert audit.returncode == 0, audit.stdout[-3000:]
    assert report["recoveries"] == 0

