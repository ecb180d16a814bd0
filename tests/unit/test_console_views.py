"""View models of the console: badges, TLP colours, rows, filters, alert fields, pictures."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bus.adapters.feed_index import IndexedRecord, Verdict
from bus.core.alert_terms import Term, TermKind
from bus.core.codelists import Tlp
from bus.web.console import charts, views
from tests.helpers import REPO, example

CSS = (REPO / "bus/web/console/static/console.css").read_text()


def record(verdict: Verdict = Verdict.VERIFIED, *, reason: str | None = None, **overrides) -> IndexedRecord:
    alert = example("suspicious-container", tlp="RED", handling_codes=["H2", "H3"],
                    h3_conditions="No action without consulting NL-CUSTOMS", release_to=["EUROPOL"])
    dumped = alert.model_dump(mode="json")
    readable = verdict in (Verdict.VERIFIED, Verdict.DECRYPTED)
    values = dict(
        id=1, topic="feed.europol", partition=0, offset=7, timestamp_ms=1_767_225_600_000, key=b"CSQU3054383",
        verdict=verdict, reason=reason, detail="details" if reason else None,
        message_id=str(alert.header.message_id) if verdict.trusted else None,
        alert_type="suspicious-container" if verdict.trusted else None,
        producer="NL-CUSTOMS" if verdict.trusted else None,
        created=alert.header.created if verdict.trusted else None,
        expires=None, tlp="RED" if verdict.trusted else None,
        handling=("H2", "H3") if verdict.trusted else (),
        h3_conditions=alert.header.h3_conditions if readable else None,
        summary=alert.header.summary if readable else None,
        header=dumped["header"] if verdict.trusted else None, alert=dumped if readable else None,
        route_rules=None, claimed={"producer": "NL-CUSTOMS"},
    )
    values.update(overrides)
    return IndexedRecord(**values)


@given(st.sampled_from(list(Verdict)), st.text(max_size=30))
def test_only_verified_records_are_ever_labelled_verified(verdict, reason):
    mark = views.badge(record(verdict, reason=reason or None))
    if verdict is Verdict.FAILED:
        assert not mark.trusted and "NOT VERIFIED" in mark.label and "✔" not in mark.label
        assert mark.css == "badge-failed"
    elif verdict is Verdict.SEALED:
        assert "verified" not in mark.label and mark.css == "badge-sealed"
    else:
        assert mark.trusted and mark.label.startswith("✔ verified")


def test_every_tlp_has_its_official_tlp_2_colour():
    assert set(views.TLP_CSS) == {t.value for t in Tlp}
    official = {"RED": "#FF2B2B", "AMBER+STRICT": "#FFC000", "AMBER": "#FFC000", "GREEN": "#33FF00", "CLEAR": "#FFFFFF"}
    assert official == views.TLP_COLOURS
    variables = dict(re.findall(r"--(tlp-[a-z]+): (#[0-9A-Fa-f]{6})", CSS))
    for tlp, css_class in views.TLP_CSS.items():
        rule = re.search(rf"\.{css_class}\b[^{{]*\{{ color: var\(--(tlp-[a-z]+)\)", CSS)
        assert rule, css_class
        assert variables[rule.group(1)].upper() == official[tlp]
    assert variables["tlp-bg"] == "#000000"


def test_a_row_carries_tlp_handling_codes_and_h3_conditions():
    row = views.row_view(record())
    assert (row.tlp, row.tlp_css, row.handling) == ("TLP:RED", "tlp-red", ("H2", "H3"))
    assert row.h3_conditions == "No action without consulting NL-CUSTOMS"
    assert row.identifier == "CSQU3054383" and row.href == "/record/0/7"


def test_a_failed_row_shows_no_claim_as_fact():
    row = views.row_view(record(Verdict.FAILED, reason="bad-signature"))
    assert (row.tlp, row.producer, row.alert_type, row.handling) == ("", "", "", ())
    assert row.summary.startswith("Rejected by verification (bad-signature)") and "claims" in row.summary


def test_a_sealed_row_says_for_whom_it_is_encrypted():
    row = views.row_view(record(Verdict.SEALED, reason="not-a-recipient"))
    assert row.summary.startswith("Encrypted for EUROPOL") and row.tlp == "TLP:RED"


def test_expired_alerts_are_marked():
    now = datetime.now(UTC)
    assert views.row_view(record(expires=now - timedelta(hours=1)), now).expired
    assert not views.row_view(record(expires=now + timedelta(hours=1)), now).expired


def test_filters_are_checked_and_become_a_query():
    filters = views.parse_filters({"type": "operation-notice", "tlp": "amber+strict", "handling": "h3",
                                   "country": "nl", "port": "nlrtm", "producer": "NL-CUSTOMS",
                                   "from": "2026-03-01", "to": "2026-03-02", "q": "bananas imo:IMO9074729"})
    q = filters.query
    assert (q.alert_types, q.tlps, q.handling, q.countries, q.ports, q.producers) == (
        ("operation-notice",), ("AMBER+STRICT",), ("H3",), ("NL",), ("NLRTM",), ("NL-CUSTOMS",))
    assert q.created_from == datetime(2026, 3, 1, tzinfo=UTC) and q.created_to == datetime(2026, 3, 3, tzinfo=UTC)
    assert q.text == "bananas" and q.exact == (Term(TermKind.IMO, "9074729"),)
    assert not filters.problems and "tlp=AMBER%2BSTRICT" in filters.query_string()


def test_a_bad_filter_value_is_dropped_and_reported():
    filters = views.parse_filters({"tlp": "PURPLE", "port": "Rotterdam", "from": "yesterday", "type": "x"})
    assert filters.query.empty
    assert len(filters.problems) == 4 and any("PURPLE" in p for p in filters.problems)


def test_search_prefixes_make_exact_terms():
    text, exact = views.parse_search("container:csqu3054383 bl:EPAGYE2611004 operation:ES-2026-CD-0117 cocaine x:y")
    assert text == "cocaine x:y"
    assert exact == (Term(TermKind.CONTAINER, "CSQU3054383"), Term(TermKind.BILL_OF_LADING, "EPAGYE2611004"),
                     Term(TermKind.OPERATION, "ES-2026-CD-0117"))


def test_the_alert_page_lists_every_field():
    alert = example("suspicious-container")
    shown = dict(views.fields(alert.model_dump(mode="json")))
    assert shown["Container number"] == "CSQU3054383" and shown["Vessel IMO"] == "9074729"
    assert shown["Risk indicators"] == "cover-load, weight-discrepancy, seal-tampering, route-anomaly"
    assert shown["Empact priority"] == "2026-2029 CCH"
    dumped = alert.model_dump(mode="json")
    filled = [k for k, v in {**dumped["header"], **dumped}.items() if k != "header" and v not in (None, [], "")]
    assert len(shown) == len(filled)


def test_pictures_count_what_the_index_says():
    today = date(2026, 3, 14)
    svg = charts.per_day_chart([("2026-03-14", "suspicious-container", 3), ("2026-03-13", "operation-notice", 1),
                                ("2025-01-01", "operation-notice", 9)], today)
    assert "2026-03-14: 3 suspicious-container" in svg and "2026-03-13: 1 operation-notice" in svg
    assert "2025-01-01" not in svg  # outside the window
    ports = charts.ports_chart([("NLRTM", 4), ("BEANR", 1)])
    assert "NLRTM: 4 alert(s)" in ports and 'href="/?port=BEANR"' in ports
