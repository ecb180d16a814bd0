"""Broker faults on a real three-node cluster: the router keeps exactly-once through a node crash.

The session broker has one node, so losing it is an outage, not a fault to survive;
this module starts its own `LocalCluster(3)` (replication 3, min ISR 2) and SIGKILLs
one node while the router is mid-stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from bus.adapters.broker import LocalCluster, free_port
from bus.adapters.kafka import open_engine
from bus.adapters.kafka.reading import ensure_topics
from bus.config import KafkaSettings
from bus.core.audit import verify_chains
from bus.core.placement import partition_for
from bus.core.topology import AUDIT_TOPIC, Replication, feed_topic_spec
from bus.errors import BusError
from bus.services.router import FileSources, Router, RouterIdentity, RouterOptions, RouterStats
from tests.helpers import example, wait_for
from tests.router_support import (
    NEUTRAL,
    demo_federation,
    ensure_router_topics,
    feed_ids,
    read,
    sealed,
    send_all,
)

NODES = 3
COUNT = 300
BATCH = 10
PARTNER = "ES-CUSTOMS"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Its own three nodes on free ports: a fault here must not hurt the session broker."""
    ports = [free_port() for _ in range(NODES)]
    controller_ports = [free_port() for _ in range(NODES)]
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), NODES, ports=ports, controller_ports=controller_ports)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def admin(settings: KafkaSettings) -> Any:
    """kafka-python's admin client: the port does not describe leaders or transactions."""
    return KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="fault-test")


def leader_of(settings: KafkaSettings, topic: str, partition: int) -> int:
    client = admin(settings)
    try:
        [described] = client.describe_topics([topic])
        return next(int(p["leader_id"]) for p in described["partitions"] if p["partition_index"] == partition)
    finally:
        client.close()


def transactional_suffix_coordinated_by(settings: KafkaSettings, node: int, prefix: str) -> str:
    """An instance name n such that `<prefix>-<n>`'s transaction coordinator is `node`, so that
    killing `node` takes the coordinator down mid-transaction.

    Kafka places an id on `__transaction_state` partition abs(Java hashCode) mod its
    partition count; that partition's leader is the coordinator."""
    engine = open_engine(settings)
    warm = engine.transactional_producer(f"{prefix}-warm-up")
    warm.init(30)  # creates __transaction_state
    warm.close()
    client = admin(settings)
    try:
        [state] = client.describe_topics(["__transaction_state"])
    finally:
        client.close()
    leaders = {p["partition_index"]: int(p["leader_id"]) for p in state["partitions"]}
    for n in range(10_000):
        if leaders[java_string_hash_abs(f"{prefix}-{n}") % len(leaders)] == node:
            return str(n)
    raise AssertionError(f"no transactional id lands on node {node}")


def group_coordinated_by(settings: KafkaSettings, node: int, prefix: str) -> str:
    """A consumer group id whose group coordinator is `node` (placed like a transactional id,
    on `__consumer_offsets`). librdkafka has waited forever, past its timeout, in
    `send_offsets_to_transaction` when that coordinator died (its issues 5456 and 5511)."""
    client = admin(settings)
    try:
        def offsets_topic_leaders() -> dict[int, int]:
            with contextlib.suppress(KafkaError):  # asking for a coordinator creates the topic
                client.describe_groups([f"{prefix}-warm-up"])
            try:
                [described] = client.describe_topics(["__consumer_offsets"])
            except KafkaError:
                return {}
            return {p["partition_index"]: int(p["leader_id"]) for p in described["partitions"]}

        wait_for(offsets_topic_leaders, 60, "__consumer_offsets")
        leaders = offsets_topic_leaders()
    finally:
        client.close()
    for n in range(10_000):
        if leaders[java_string_hash_abs(f"{prefix}-{n}") % len(leaders)] == node:
            return f"{prefix}-{n}"
    raise AssertionError(f"no group id lands on node {node}")


def java_string_hash_abs(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h & 0x80000000 else h
    return 0 if h == -(1 << 31) else abs(h)


def coordinator_of(settings: KafkaSettings, transactional_id: str) -> int:
    client = admin(settings)
    try:
        return int(client.describe_transactions([transactional_id])[transactional_id].coordinator_id)
    finally:
        client.close()


def test_router_survives_a_broker_node_crash_without_loss_or_duplicates(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """SIGKILL the node leading the alerts' audit chain and coordinating the router's transactions
    and its consumer group, mid-stream: each alert reaches the feed exactly once and the audit
    chains hold."""
    settings = KafkaSettings(bootstrap=cluster.bootstrap)
    engine = open_engine(settings)
    fed = demo_federation(tmp_path / "federation")
    suffix = os.urandom(3).hex()
    feed = f"feed.f{suffix}.{PARTNER.lower()}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "version": f"fault-{suffix}",
        "partners": [{"id": PARTNER, "kind": "customs", "feed": feed}],
        "rules": [{"id": "all", "match": {"alert_types": ["corruption-indicator"]}, "deliver_to": [PARTNER]}],
    }))
    ensure_router_topics(engine)
    client = engine.admin()
    ensure_topics(client, [feed_topic_spec(feed, Replication.for_cluster(NODES))])
    client.close()

    alerts = [sealed(example("corruption-indicator", producer="EUROPOL", **NEUTRAL), fed.signers["EUROPOL"])
              for _ in range(COUNT)]
    ids = set(send_all(engine, alerts))
    task = partition_for(alerts[0].key, 6)  # the examples share one key: one task does all the work

    sources = FileSources(policy, federation=fed.directory_path, authority_pub=fed.authority_pub,
                          state_dir=tmp_path / "state")
    victim = leader_of(settings, AUDIT_TOPIC, task)
    prefix = f"tx-fault-{suffix}"
    instance = transactional_suffix_coordinated_by(settings, victim, prefix)
    group = group_coordinated_by(settings, victim, f"router-fault-{suffix}")
    assert fed.router_signer is not None
    router = Router(engine, sources.load, RouterIdentity(fed.router_id, fed.router_signer), RouterOptions(
        state_dir=tmp_path / "state", instance=instance, transactional_prefix=prefix,
        group_id=group, batch_size=BATCH, commit_timeout=10), changed=sources.changed)
    failure: list[BaseException] = []
    result: list[RouterStats] = []

    def run() -> None:
        try:
            result.append(router.run())
        except BaseException as exc:  # surfaced by the test thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="router", daemon=True)
    thread.start()
    try:
        wait_for(lambda: router.stats.routed >= 30 or bool(failure), 60, "the router to get going")
        assert coordinator_of(settings, router.transactional_id) == victim, "victim is not the coordinator"
        cluster.stop_node(victim, kill=True)
        routed_at_kill = router.stats.routed
        assert not failure, failure
        assert routed_at_kill < COUNT, f"kill was not mid-stream ({routed_at_kill}/{COUNT})"
        # Fail-over takes ~6 s (the dead node is fenced), plus up to `commit_timeout` if the
        # kill left a transaction's outcome unknown (the router then restores from Kafka).
        # Wait on the feed, not the router's counter: a batch whose commit landed although its
        # answer was lost is restored as done, never routed (nor counted) a second time.
        def all_on_feed() -> bool:
            try:
                return set(feed_ids(engine, feed)) >= ids
            except BusError:  # the feed's leaders move off the dead node meanwhile
                return False

        wait_for(lambda: all_on_feed() or bool(failure) or not thread.is_alive(), 120,
                 f"every alert on the feed after node {victim} died (router at {router.stats.routed}/{COUNT})")
    finally:
        router.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "router did not stop"
    assert not failure, failure
    assert COUNT - BATCH * router.stats.recoveries <= router.stats.routed <= COUNT

    # Read back with the node still down: two replicas of three must be enough.
    delivered = feed_ids(engine, feed)
    assert set(delivered) == ids and max(delivered.values()) == 1, f"node {victim} killed at {routed_at_kill}"
    records = read(engine, AUDIT_TOPIC)
    reports = verify_chains(((r.partition, r.offset, r.value) for r in records), fed.directory)
    assert all(r.ok for r in reports.values()), reports
    decided = [json.loads(r.value or b"") for r in records]
    assert sum(1 for e in decided if e.get("kind") == "decision") == COUNT
    print(f"node {victim} killed at {routed_at_kill}/{COUNT}; {router.stats.recoveries} recoveries")

    cluster.start_node(victim)  # and the crashed node comes back into the cluster
    assert len(read(engine, feed)) == COUNT
