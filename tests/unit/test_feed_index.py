"""The feed index: stores each record once with its coordinates, finds it by identifier and word,
filters, relates alerts, and keeps its bookmark in step with its content."""

from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.adapters.feed_index import FeedEntry, FeedIndex, FeedQuery, StixFilter, StixRef, Verdict, fts_expression
from bus.core.alert_terms import Term, TermKind, alert_terms, alert_text
from bus.errors import FeedIndexError
from tests.helpers import example

TOPIC = "feed.europol"


def entry(alert, offset: int, *, partition: int = 0, verdict: Verdict = Verdict.VERIFIED,
          ts: int | None = None) -> FeedEntry:
    dumped = alert.model_dump(mode="json")
    return FeedEntry(TOPIC, partition, offset, ts or 1_767_225_600_000 + offset, b"k", b"v", ((b"ce_id", b"x"),),
                     verdict, "dir-1", header=dumped["header"], alert=dumped, terms=alert_terms(alert),
                     text=alert_text(alert), route_rules=("rule-a",))


def failed(offset: int) -> FeedEntry:
    return FeedEntry(TOPIC, 0, offset, 1_767_225_600_000 + offset, None, b"junk", (), Verdict.FAILED, "dir-1",
                     reason="bad-signature", detail="signature does not verify",
                     claimed={"producer": "NL-CUSTOMS"})


@pytest.fixture
def index(tmp_path):
    idx = FeedIndex(tmp_path / "feed.sqlite", TOPIC)
    yield idx
    idx.close()


def test_the_file_is_private_and_bound_to_its_topic(tmp_path, index):
    assert stat.S_IMODE((tmp_path / "feed.sqlite").stat().st_mode) == 0o600
    with pytest.raises(FeedIndexError, match=r"holds topic 'feed\.europol', not 'feed\.nl-customs'"):
        FeedIndex(tmp_path / "feed.sqlite", "feed.nl-customs")


def test_records_are_stored_once_and_positions_only_move_forward(index):
    a = example("suspicious-container")
    first = index.add([entry(a, 0), entry(a, 1)], {0: 2})
    assert len(first) == 2
    assert index.add([entry(a, 1)], {0: 1}) == []  # the same coordinates again: nothing new
    assert index.positions() == {0: 2}
    assert index.count() == 2
    stored = index.get(0, 1)
    assert stored is not None and stored.route_rules == ("rule-a",) and stored.verdict is Verdict.VERIFIED
    assert stored.alert == a.model_dump(mode="json")


def test_a_failed_write_leaves_neither_records_nor_positions(index, monkeypatch):
    good = entry(example("suspicious-container"), 0)
    broken = FeedEntry(TOPIC, 0, 1, 1, None, None, (), Verdict.VERIFIED, "d", header={"created": "not a time"})
    with pytest.raises(ValueError):
        index.add([good, broken], {0: 2})
    assert index.count() == 0 and index.positions() == {}


def test_search_by_identifier_and_by_word(index):
    c = example("suspicious-container", summary="Cocaine in reefer bananas from Guayaquil")
    op = example("operation-notice")
    index.add([entry(c, 0), entry(op, 1)], {0: 2})
    assert [r.message_id for r in index.search(FeedQuery(text="CSQU3054383"))] == [str(c.header.message_id)]
    assert [r.message_id for r in index.search(FeedQuery(text="guayaquil"))] == [str(c.header.message_id)]
    assert [r.message_id for r in index.search(FeedQuery(text="bana"))] == [str(c.header.message_id)]  # prefix
    by_imo = index.search(FeedQuery(exact=(Term(TermKind.IMO, "IMO 9074729"),)))
    assert [r.message_id for r in by_imo] == [str(c.header.message_id)]
    by_bl = index.search(FeedQuery(exact=(Term(TermKind.BILL_OF_LADING, "epagye2611004"),)))
    assert [r.message_id for r in by_bl] == [str(c.header.message_id)]
    by_op = index.search(FeedQuery(exact=(Term(TermKind.OPERATION, op.operation_id),)))
    assert [r.message_id for r in by_op] == [str(op.header.message_id)]
    assert index.search(FeedQuery(text="nothing-like-this")) == []


def test_each_filter_narrows_and_failed_records_match_none(index):
    red = example("suspicious-container", tlp="RED", handling_codes=["H3"], h3_conditions="Consult NL-CUSTOMS first",
                  release_to=["EUROPOL"], ports=["ESALG"], countries=["ES"])
    amber = example("corruption-indicator", producer="BE-CUSTOMS", tlp="AMBER", handling_codes=["H1"],
                    h3_conditions=None)
    index.add([entry(red, 0), entry(amber, 1), failed(2)], {0: 3})
    assert index.count() == 3
    cases = {
        "alert_types": (("corruption-indicator",), amber),
        "tlps": (("RED",), red),
        "handling": (("H3",), red),
        "countries": (("ES",), red),
        "ports": (("ESALG",), red),
        "producers": (("BE-CUSTOMS",), amber),
    }
    for name, (values, wanted) in cases.items():
        found = index.search(FeedQuery(**{name: values}))
        assert [r.message_id for r in found] == [str(wanted.header.message_id)], name
    created = red.header.created
    assert index.count(FeedQuery(created_from=created + timedelta(days=1))) == 0
    assert index.count(FeedQuery(created_to=created + timedelta(days=1))) == 2


def test_related_alerts_share_an_identifier_or_name_each_other(index):
    first = example("suspicious-container")
    same_box = example("operation-notice").model_copy(update={"containers": ["CSQU3054383"]})
    naming = example("corruption-indicator", related=[str(first.header.message_id)])
    unrelated = example("suspicious-container", producer="BE-CUSTOMS")
    unrelated = unrelated.model_copy(update={"container_number": "MSKU9070323", "vessel_imo": None,
                                             "bill_of_lading": None})
    index.add([entry(first, 0), entry(same_box, 1), entry(naming, 2), entry(unrelated, 3)], {0: 4})
    record = index.get(0, 0)
    assert record is not None
    related = {r.message_id: shared for r, shared in index.related(record)}
    assert set(related) == {str(same_box.header.message_id), str(naming.header.message_id)}
    assert Term(TermKind.CONTAINER, "CSQU3054383") in related[str(same_box.header.message_id)]


def test_newest_first_with_a_cursor_and_live_rows_after_an_id(index):
    alerts = [example("suspicious-container") for _ in range(5)]
    ids = index.add([entry(a, i, ts=1_000 + i) for i, a in enumerate(alerts)], {0: 5})
    page = index.search(limit=2)
    assert [r.offset for r in page] == [4, 3]
    older = index.search(limit=2, before=(page[-1].timestamp_ms, page[-1].id))
    assert [r.offset for r in older] == [2, 1]
    assert [r.id for r in index.since(ids[2])] == ids[3:]


def test_recheck_replaces_a_verdict_and_what_it_can_be_found_by(index):
    a = example("suspicious-container")
    index.add([entry(a, 0)], {0: 1})
    (stale,) = index.stale("dir-2")
    assert (stale.partition, stale.offset, stale.value, stale.headers) == (0, 0, b"v", ((b"ce_id", b"x"),))
    index.recheck({stale.id: FeedEntry(TOPIC, 0, 0, 1, b"k", b"v", (), Verdict.FAILED, "dir-2",
                                       reason="key-revoked", detail="revoked")})
    assert index.stale("dir-2") == []
    record = index.get(0, 0)
    assert record is not None and record.verdict is Verdict.FAILED and record.producer is None
    assert index.search(FeedQuery(text="CSQU3054383")) == []


def test_charts_count_by_day_and_port(index):
    index.add([entry(example("suspicious-container"), 0), entry(example("operation-notice"), 1)], {0: 2})
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert sorted(index.per_day()) == [(day, "operation-notice", 1), (day, "suspicious-container", 1)]
    assert dict(index.port_counts()) == {"ECGYE": 1, "PAMIT": 1, "NLRTM": 1, "ESALG": 1, "DEHAM": 1}


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(max_size=60))
def test_any_search_text_is_a_search_never_a_query_error(index, text):
    """Whatever an officer types (quotes, NEAR, column:filters, stars), FTS5 sees only quoted phrases."""
    index.search(FeedQuery(text=text))
    printable = "".join(c if c.isprintable() else " " for c in text)
    words = [w for w in printable.split() if any(c.isalnum() for c in w)]
    expression = fts_expression(text)
    assert expression == (" ".join('"' + w.replace('"', '""') + '"*' for w in words) or None)


def refs(n: int) -> list[StixRef]:
    return [StixRef(i, f"indicator--00000000-0000-4000-8000-{i:012d}", "indicator", "2026-11-30T10:00:00.000Z",
                    1_796_032_800_000_000) for i in range(n)]


def test_only_readable_records_wait_for_their_stix_listing(index):
    a = example("suspicious-container")
    index.add([entry(a, 0), failed(1), entry(a, 2, verdict=Verdict.DECRYPTED)], {0: 3})
    pending = index.stix_pending()
    assert [index.get(0, o).id for o in (0, 2)] == [p.record_id for p in pending]
    assert index.stix_frontier() == pending[0].record_id
    assert index.store_stix({pending[0]: refs(3), pending[1]: None}) == 2  # None: maps to no object
    assert index.stix_pending() == [] and index.stix_frontier() is None
    rows = index.stix_rows(0, 0, 1, StixFilter())
    assert [(r.offset, r.seq) for r in rows] == [(0, 1), (0, 2)]  # from (offset 0, seq 1) on


def test_a_record_verified_again_is_listed_again_and_a_stale_listing_is_not_stored(index):
    a = example("suspicious-container")
    (record_id,) = index.add([entry(a, 0)], {0: 1})
    (pending,) = index.stix_pending()
    index.store_stix({pending: refs(2)})
    index.recheck({record_id: entry(a, 0)})  # new findings: the listing is dropped
    assert index.stix_rows(0, 0, 0, StixFilter()) == [] and index.stix_frontier() == record_id
    (again,) = index.stix_pending()
    index.recheck({record_id: failed(0)})  # verified again while being listed: now it fails
    assert index.store_stix({again: refs(2)}) == 0
    assert index.stix_pending() == [] and index.stix_rows(0, 0, 0, StixFilter()) == []


def test_a_listing_made_by_another_mapping_version_is_dropped(tmp_path):
    index = FeedIndex(tmp_path / "f.sqlite", TOPIC)
    index.add([entry(example("suspicious-container"), 0)], {0: 1})
    with closing(sqlite3.connect(tmp_path / "f.sqlite")) as db, db:  # an index kept before TAXII: nothing pending
        db.execute("DELETE FROM stix_pending")
    index.use_stix_mapping("1")  # the first use lists every readable record
    index.store_stix({index.stix_pending()[0]: refs(1)})
    index.use_stix_mapping("1")
    assert index.stix_pending() == []
    index.use_stix_mapping("2")
    assert len(index.stix_pending()) == 1 and index.stix_rows(0, 0, 0, StixFilter()) == []
    index.close()
