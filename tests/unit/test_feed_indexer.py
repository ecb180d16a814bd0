"""The feed indexer on the in-memory cluster: verdicts, bookmarks, rebuilds, refusals, re-verification."""

from __future__ import annotations

import threading

import pytest

from bus.adapters.federation_file import make_demo
from bus.adapters.feed_index import FeedIndex, FeedQuery, Verdict
from bus.core.acl_plan import AclBinding, Operation, PatternType, ResourceType
from bus.core.topology import feed_topic
from bus.errors import KafkaOperationFailed, NotAuthorized, RejectReason
from bus.services.feed_indexer import FeedIndexer, IndexerState
from bus.services.feed_verdicts import FeedVerifier, route_rules
from tests.console_fixtures import MEMBER, TOPIC, Feed, container, drain
from tests.helpers import CODES, SCHEMAS, example, wait_for


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("federation"))


@pytest.fixture
def feed(fed):
    return Feed(fed)


def test_every_partition_is_indexed_with_its_verdict_and_coordinates(feed, tmp_path):
    alerts = [container(f"box {i}") for i in range(4)]
    where = [feed.put(a) for a in alerts]
    feed.put(container("forged"), tamper=True)
    indexer = feed.indexer(tmp_path / "i.sqlite")
    drain(indexer, 5)
    index = indexer.index
    assert index.positions() == {0: 2, 1: 2, 2: 1}
    for alert, at in zip(alerts, where, strict=True):
        record = index.get(at.partition, at.offset)
        assert record is not None and record.verdict is Verdict.VERIFIED
        assert record.message_id == str(alert.header.message_id) and record.route_rules == ("containers-to-europol",)
    (bad,) = [r for r in index.search() if r.verdict is Verdict.FAILED]
    assert bad.reason == RejectReason.BAD_SIGNATURE.value and bad.summary is None and bad.alert is None
    assert bad.claimed["producer"] == "NL-CUSTOMS"
    assert index.search(FeedQuery(text="forged")) == []  # a failed record's claims are not searchable


def test_a_restart_resumes_where_the_index_ends_and_a_deleted_index_is_rebuilt(feed, tmp_path):
    for i in range(3):
        feed.put(container(f"first {i}"))
    path = tmp_path / "i.sqlite"
    first = feed.indexer(path)
    drain(first, 3)
    first.close()
    first.index.close()
    feed.put(container("while the console was down"))
    again = feed.indexer(path)
    assert len(drain(again, 1)) == 1
    assert again.step() == [] and again.index.count() == 4
    again.close()
    again.index.close()
    path.unlink()
    rebuilt = feed.indexer(path)
    drain(rebuilt, 4)
    assert rebuilt.index.count() == 4 and rebuilt.index.positions() == {0: 2, 1: 1, 2: 1}


def test_encrypted_alerts_are_decrypted_with_the_members_key_or_shown_sealed(feed, tmp_path):
    red = container("Encrypted cocaine tip", tlp="RED", release_to=[MEMBER])
    for_others = container("Not for us", tlp="RED", release_to=["BE-CUSTOMS"])
    feed.put(red, encrypt=True)
    feed.put(for_others, encrypt=True)
    with_key = feed.indexer(tmp_path / "a.sqlite")
    drain(with_key, 2)
    records = {r.message_id: r for r in with_key.index.search()}
    opened = records[str(red.header.message_id)]
    assert opened.verdict is Verdict.DECRYPTED and opened.summary == "Encrypted cocaine tip"
    assert with_key.index.search(FeedQuery(text="cocaine"))[0].id == opened.id
    sealed = records[str(for_others.header.message_id)]
    assert sealed.verdict is Verdict.SEALED and sealed.reason == RejectReason.NOT_A_RECIPIENT.value
    assert sealed.summary is None and sealed.tlp == "RED"  # the clear header only

    without_key = feed.indexer(tmp_path / "b.sqlite", verifier=feed.verifier(decrypt=False))
    drain(without_key, 2)
    assert {r.verdict for r in without_key.index.search()} == {Verdict.SEALED}


def test_a_new_directory_verifies_every_stored_record_again(fed, feed, tmp_path):
    feed.put(container("before the directory changed"))
    current = {"directory": fed.directory}
    verifier = FeedVerifier(lambda: current["directory"], None, SCHEMAS, CODES)
    indexer = feed.indexer(tmp_path / "i.sqlite", verifier=verifier)
    seen: list[int] = []
    indexer.subscribe(seen.append)
    drain(indexer, 1)
    assert indexer.index.search()[0].verdict is Verdict.VERIFIED
    without_nl = tuple(m for m in fed.directory.members if m.id != "NL-CUSTOMS")
    current["directory"] = fed.directory.model_copy(update={"members": without_nl, "version": 2})
    indexer.step()
    (record,) = indexer.index.search()
    assert record.verdict is Verdict.FAILED and record.reason == RejectReason.UNKNOWN_KEY.value
    assert seen and seen[-1] == record.id  # the pages were told


def test_an_undecodable_record_is_kept_and_flagged(feed, tmp_path):
    feed.engine.faults.inject_undecodable(TOPIC, 1)
    feed.put(container("after it"))
    indexer = feed.indexer(tmp_path / "i.sqlite")
    drain(indexer, 2)
    verdicts = sorted((r.verdict, r.reason) for r in indexer.index.search())
    assert verdicts == [(Verdict.FAILED, "undecodable"), (Verdict.VERIFIED, None)]


def test_the_broker_decides_what_the_principal_may_read(feed, tmp_path):
    admin = feed.engine.admin()
    admin.upsert_scram_user("be-customs", "secret-password")
    feed.engine.create_topic(feed_topic("BE-CUSTOMS"))
    admin.create_acls([AclBinding("User:be-customs", ResourceType.TOPIC, PatternType.LITERAL,
                                  feed_topic("BE-CUSTOMS"), Operation.READ)])
    as_be = feed.engine.as_user("be-customs", "secret-password")
    index = FeedIndex(tmp_path / "i.sqlite", TOPIC)
    indexer = FeedIndexer(as_be, TOPIC, index, feed.verifier(), poll_timeout=0.05)
    with pytest.raises(NotAuthorized):
        indexer.open()
    stop = threading.Event()
    worker = threading.Thread(target=indexer.run, args=(stop,))
    worker.start()
    try:
        wait_for(lambda: indexer.status.state is IndexerState.REFUSED, 10, "the refusal")
        assert "refuses" in indexer.status.message and index.count() == 0
    finally:
        stop.set()
        worker.join(10)
    own = FeedIndexer(as_be, feed_topic("BE-CUSTOMS"), FeedIndex(tmp_path / "own.sqlite", feed_topic("BE-CUSTOMS")),
                      feed.verifier(), poll_timeout=0.05)
    own.open()
    own.step()
    assert own.status.state is IndexerState.LIVE


def test_run_indexes_live_records_and_stops(feed, tmp_path):
    indexer = feed.indexer(tmp_path / "i.sqlite")
    arrived = threading.Event()
    indexer.subscribe(lambda last: arrived.set() if last else None)
    stop = threading.Event()
    worker = threading.Thread(target=indexer.run, args=(stop,))
    worker.start()
    try:
        wait_for(lambda: indexer.status.state is IndexerState.LIVE, 10, "live")
        feed.put(example("operation-notice", producer="ES-CUSTOMS", release_to=[MEMBER]))
        assert arrived.wait(10)
        assert indexer.index.count() == 1
    finally:
        stop.set()
        worker.join(10)
    assert indexer.status.state is IndexerState.STOPPED


def test_route_rules_come_from_the_routers_header_only():
    assert route_rules(()) is None
    assert route_rules(((b"bus_route_rule", b"containers-to-europol, empact-cch"),)) == (
        "containers-to-europol", "empact-cch")
    assert route_rules(((b"bus_route_rule", b"a"), (b"bus_route_rule", b"b"))) == ("a", "b")
    assert route_rules(((b"bus_route_rules", b"x"),)) is None


def test_a_feed_that_does_not_exist_is_named(feed, tmp_path, monkeypatch):
    monkeypatch.setattr("bus.services.feed_indexer.PROBE_READ_SECONDS", 0.2)
    index = FeedIndex(tmp_path / "i.sqlite", "feed.nobody")
    with pytest.raises(KafkaOperationFailed, match=r"topic feed\.nobody is not visible: it does not exist"):
        FeedIndexer(feed.engine, "feed.nobody", index, feed.verifier()).open()
