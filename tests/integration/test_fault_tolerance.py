"""Broker faults on a real three-node cluster: the router keeps exactly-once through a node crash.

The session broker has one node, so losing it is an outage, not a fault to survive;
this module starts its own `LocalCluster(3)` (replication 3, min ISR 2) and SIGKILLs
one node while the router is mid-stream.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bus.services.router_sources import FileSources

from bus.adapters import kafka_legacy as kafka_adapter
from bus.adapters.broker import LocalCluster, free_port
from bus.adapters.federation_file import make_demo
from bus.config import KafkaSettings
from bus.core.audit import verify_chain
from bus.services.publisher import Publisher
from bus.services.router import Router, RouterOptions, RouterStats
from tests.helpers import assert_delivered_once, example, read_all, wait_for

NODES = 3
COUNT = 300
PARTNER = "ES-CUSTOMS"
NEUTRAL = {
    "tlp": "AMBER", "handling_codes": [], "source_reliability": "C", "information_assessment": "3",
    "empact_priority": None, "countries": [], "ports": [], "release_to": [], "h3_conditions": None,
}


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


def audit_leader(settings: KafkaSettings) -> int:
    """The node leading the audit partition: every router transaction writes there."""
    client = kafka_adapter.admin(settings)
    try:
        [topic] = client.describe_topics([kafka_adapter.AUDIT_TOPIC])
        return int(topic["partitions"][0]["leader_id"])
    finally:
        client.close()


def transactional_id_coordinated_by(settings: KafkaSettings, node: int, prefix: str) -> str:
    """A transactional id whose coordinator is `node`, so that killing `node` takes the
    coordinator down mid-transaction (the hardest case: kafka-python can wedge on it).

    Kafka places an id on `__transaction_state` partition abs(Java hashCode) mod its
    partition count; that partition's leader is the coordinator."""
    warm = kafka_adapter.producer(settings, transactional_id=f"{prefix}-warm-up")
    warm.init_transactions()  # creates __transaction_state
    warm.close()
    client = kafka_adapter.admin(settings)
    try:
        [state] = client.describe_topics(["__transaction_state"])
    finally:
        client.close()
    leaders = {p["partition_index"]: int(p["leader_id"]) for p in state["partitions"]}
    for n in range(10_000):
        candidate = f"{prefix}-{n}"
        if leaders[java_string_hash_abs(candidate) % len(leaders)] == node:
            return candidate
    raise AssertionError(f"no transactional id lands on node {node}")


def java_string_hash_abs(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h & 0x80000000 else h
    return 0 if h == -(1 << 31) else abs(h)


def coordinator_of(settings: KafkaSettings, transactional_id: str) -> int:
    client = kafka_adapter.admin(settings)
    try:
        return client.describe_transactions([transactional_id])[transactional_id].coordinator_id
    finally:
        client.close()


def test_router_survives_a_broker_node_crash_without_loss_or_duplicates(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """SIGKILL the node leading `audit` and coordinating the router's transactions, mid-stream:
    each alert reaches the feed exactly once and the audit chain holds."""
    settings = KafkaSettings(bootstrap=cluster.bootstrap)
    fed = make_demo(tmp_path / "federation")
    suffix = os.urandom(3).hex()
    feed = f"feed.f{suffix}.{PARTNER.lower()}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "version": f"fault-{suffix}",
        "partners": [{"id": PARTNER, "kind": "customs", "feed": feed}],
        "rules": [{"id": "all", "match": {"alert_types": ["corruption-indicator"]}, "deliver_to": [PARTNER]}],
    }))
    kafka_adapter.ensure_topics(settings, [*kafka_adapter.default_topics(6, NODES),
                                           kafka_adapter.feed_topic_spec(feed, 6, NODES)])

    alerts = [example("corruption-indicator", producer="EUROPOL", **NEUTRAL) for _ in range(COUNT)]
    ids = {str(a.header.message_id) for a in alerts}
    with Publisher(settings, fed.signers["EUROPOL"]) as pub:
        pub.publish_many(alerts)

    sources = FileSources(policy, federation=fed.directory_path, authority_pub=fed.authority_pub,
                          state_dir=tmp_path / "state")
    victim = audit_leader(settings)
    transactional_id = transactional_id_coordinated_by(settings, victim, f"tx-fault-{suffix}")
    router = Router(settings, sources.load, changed=sources.changed, options=RouterOptions(
        group_id=f"router-fault-{suffix}", transactional_id=transactional_id,
        partitions=6, replication=NODES, batch_size=10, commit_timeout=10))
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
        assert coordinator_of(settings, transactional_id) == victim, "victim is not the transaction coordinator"
        cluster.stop_node(victim, kill=True)
        routed_at_kill = router.stats.routed
        assert not failure, failure
        assert routed_at_kill < COUNT, f"kill was not mid-stream ({routed_at_kill}/{COUNT})"
        # Fail-over takes ~6 s (the dead node is fenced), plus up to `commit_timeout` if the
        # kill wedged a transaction (kafka-python drops a request to a dying coordinator).
        wait_for(lambda: router.stats.routed >= COUNT or bool(failure) or not thread.is_alive(), 90,
                 f"the router to finish after node {victim} died (at {router.stats.routed}/{COUNT})")
    finally:
        router.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "router did not stop"
    assert not failure, failure
    assert router.stats.routed == COUNT

    # Read back with the node still down: two replicas of three must be enough.
    assert_delivered_once(settings, feed, ids, f"(node {victim} killed at {routed_at_kill})")
    audit = read_all(settings, kafka_adapter.AUDIT_TOPIC)
    checked, broken = verify_chain((m.offset, m.value) for m in audit)
    assert broken is None, broken
    assert checked == COUNT
    print(f"node {victim} killed at {routed_at_kill}/{COUNT}; {router.stats.recoveries} recoveries")

    cluster.start_node(victim)  # and the crashed node comes back into the cluster
    assert len(read_all(settings, feed)) == COUNT
