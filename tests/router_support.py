"""What the router's tests share: a test policy, sealed records as the port carries them, audit reading."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.adapters.kafka import Engine, Headers, Record, wire_headers
from bus.adapters.kafka.reading import commit_ends
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal
from bus.core.topology import ROUTER_SUBSCRIPTION
from tests.helpers import SCHEMAS

if TYPE_CHECKING:
    from bus.adapters.federation_file import DemoFederation
    from bus.services.router import Router, RouterStats


NEUTRAL = {
    "tlp": "AMBER", "handling_codes": [], "source_reliability": "C", "information_assessment": "3",
    "empact_priority": None, "countries": [], "ports": [], "release_to": [], "h3_conditions": None,
}
"""Header fields that match no rule of `policy_doc` by themselves."""


def policy_doc(feed_prefix: str = "feed.") -> dict[str, Any]:
    """Partners with their own feeds under `feed_prefix`; one rule per routing fact."""

    def partner(pid: str, kind: str) -> dict[str, str]:
        return {"id": pid, "kind": kind, "feed": f"{feed_prefix}{pid.lower()}"}

    return {
        "version": "router-test",
        "partners": [
            partner("EUROPOL", "eu-agency"), partner("NL-CUSTOMS", "customs"), partner("BE-CUSTOMS", "customs"),
            partner("DE-CUSTOMS", "customs"), partner("ES-CUSTOMS", "customs"), partner("NL-POLICE", "police"),
            partner("BE-FEDPOL", "police"), partner("EMPACT-CCH", "empact"), partner("PORT-HAMBURG", "port-authority"),
        ],
        "rules": [
            {"id": "r-type", "match": {"alert_types": ["operation-notice"]}, "deliver_to": ["NL-CUSTOMS"]},
            {"id": "r-tlp", "match": {"tlp": ["GREEN"]}, "deliver_to": ["NL-POLICE"]},
            {"id": "r-handling", "match": {"handling_codes_any": ["H1"]}, "deliver_to": ["BE-CUSTOMS"]},
            {"id": "r-empact", "match": {"empact": [{"cycle": "2026-2029", "code": "CCH"}]},
             "deliver_to": ["EMPACT-CCH"]},
            {"id": "r-country", "match": {"countries_any": ["ES"]}, "deliver_to": ["ES-CUSTOMS"]},
            {"id": "r-port", "match": {"ports_any": ["DEHAM"]}, "deliver_to": ["DE-CUSTOMS"]},
            {"id": "r-producer", "match": {"producers": ["PORT-ROTTERDAM"]}, "deliver_to": ["PORT-HAMBURG"]},
            {"id": "r-reliability", "match": {"min_source_reliability": "B", "min_information_assessment": "2"},
             "deliver_to": ["BE-FEDPOL"]},
        ],
    }


def wire(record: SealedRecord) -> tuple[str, bytes, bytes, Headers]:
    """(topic, key, value, headers as bytes): how a producer hands a sealed record to the port."""
    return record.topic, record.key, record.value, wire_headers(record.headers)


def sealed(alert: BaseAlert, signer: SigningKey) -> SealedRecord:
    return seal(alert, signer, SCHEMAS)


def ce_id(record: Record) -> str | None:
    found = record.header_values(b"ce_id")
    return found[0].decode() if len(found) == 1 and found[0] is not None else None


def header(record: Record, name: bytes) -> str | None:
    found = record.header_values(name)
    return found[-1].decode() if found and found[-1] is not None else None


def delivered_counts(records: Iterable[Record]) -> Counter[str]:
    return Counter(i for r in records if (i := ce_id(r)) is not None)


def audit_entries(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [json.loads(r.value or b"") for r in records]


def decisions(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [e for e in audit_entries(records) if e.get("kind") == "decision"]


# -- integration: one router identity for the whole session --------------------------------------

_SESSION: dict[str, Any] = {}


def session_router() -> SigningKey:
    """The router key every test federation lists (`EPA-ROUTER-1`).

    Routers of every test module share the broker's audit chains, so the session's
    auditor (`bus audit verify`, with any test module's directory) must be able to
    check every checkpoint on them: one router identity for the whole session.
    """
    if "router" not in _SESSION:
        # A fixed test-only seed: a broker reused across sessions (BUS_TEST_BOOTSTRAP) keeps verifying.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        seed = hashlib.sha256(b"epa-bus test router").digest()
        _SESSION["router"] = SigningKey("EPA-ROUTER-1", Ed25519PrivateKey.from_private_bytes(seed))
    signer: SigningKey = _SESSION["router"]
    return signer


def demo_federation(path: Path) -> DemoFederation:
    """`make_demo` listing the session's router."""
    from bus.adapters.federation_file import make_demo

    return make_demo(path, router_signer=session_router())


def start_at_end(engine: Engine, group: str) -> None:
    """Commit, for a new router group, the current end of every topic routers read: the group
    then routes only what the test writes from now on (the session broker holds earlier tests')."""
    commit_ends(engine, group, ROUTER_SUBSCRIPTION)


def read(engine: Engine, topic: str, timeout: float = 60.0) -> list[Record]:
    from bus.adapters.kafka.reading import read_to_end

    return [r for r in read_to_end(engine, topic, timeout=timeout) if isinstance(r, Record)]


def send_all(engine: Engine, records: Iterable[SealedRecord]) -> list[str]:
    """Produce sealed records (keyed: each lands where murmur2 puts it); their message ids."""
    producer = engine.producer()
    ids, futures = [], []
    try:
        for r in records:
            topic, key, value, headers = wire(r)
            futures.append(producer.send(topic, value, key=key, headers=headers))
            ids.append(dict(r.headers)["ce_id"].decode())
        for f in futures:
            f.result(30)
    finally:
        producer.close()
    return ids


def router_command(fed: DemoFederation, policy: Path, state: Path, *, group: str, instance: str | None = None,
                   extra: Iterable[str] = ()) -> list[str]:
    assert fed.router_key is not None
    return [sys.executable, "-m", "bus", "router", "run", "--policy", str(policy),
            "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
            "--router-key", str(fed.router_key), "--router-id", fed.router_id, "--state-dir", str(state),
            "--group", group, *(["--instance", instance] if instance else []), *extra]


def feed_ids(engine: Engine, topic: str) -> Counter[str]:
    return delivered_counts(read(engine, topic))


def ensure_router_topics(engine: Engine) -> None:
    """The co-partitioned topics (alerts.*, acks, audit, changelog, ...), as a router creates them."""
    from bus.adapters.kafka.reading import ensure_topics
    from bus.core.models import AlertType
    from bus.core.topology import AUDIT_CHECKPOINTS_TOPIC, Replication, TopicSpec, core_topics

    admin = engine.admin()
    try:
        replication = Replication.for_cluster(admin.describe_cluster().brokers)
        ensure_topics(admin, [*core_topics([t.value for t in AlertType], replication),
                              TopicSpec(AUDIT_CHECKPOINTS_TOPIC, 1, replication.factor)])
    finally:
        admin.close()


def spread_alert(producer: str = "EUROPOL", **header: Any) -> BaseAlert:
    """A corruption indicator about a subject of its own: its key (and partition) varies, so a
    stream of them spreads over every routing task (the examples all share one key)."""
    import json as _json
    import secrets

    from bus.core.models import parse_alert
    from tests.helpers import CODES, EXAMPLES

    data = _json.loads((EXAMPLES / "corruption-indicator.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update(header)
    data["subject_reference"] = "PSN-" + secrets.token_hex(5).upper()
    return parse_alert(data, empact_codes=CODES, producer=producer)


def route(router: Router, decided: int, timeout: float = 120.0) -> RouterStats:
    """Run `router` until it has decided `decided` records (routed or rejected), then stop it
    as SIGTERM does: its loop finishes the turn, checkpoints every chain it holds, and closes.

    The tests used `run(max_idle=4)`: 4 s of idle polling after the last batch on every
    run. The count is what they waited for; awaiting it ends the run when that is done.
    """
    run_until(router, lambda: router.stats.routed + router.stats.rejected >= decided,
              f"the router to decide {decided} records", timeout)
    decisions = router.stats.routed + router.stats.rejected
    assert decisions >= decided, f"the router stopped after deciding {decisions} of {decided} records"
    return router.stats


def run_until(router: Router, done: Callable[[], object], what: str, timeout: float = 120.0) -> RouterStats:
    """Run `router` on a thread until `done()` (or it stops by itself), then stop it as SIGTERM
    does; re-raise what the router raised, fail if it does not stop within 60 s."""
    import threading

    from tests.helpers import wait_for

    failed: list[BaseException] = []

    def run() -> None:
        try:
            router.run()
        except BaseException as exc:  # handed to the test below
            failed.append(exc)

    thread = threading.Thread(target=run, name="router-under-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: done() or not thread.is_alive(), timeout, what)
    finally:
        router.stop()
        thread.join(60)
    if failed:
        raise failed[0]
    assert not thread.is_alive(), "the router did not stop within 60 s"
    return router.stats
