"""TAXII `next` cursors: they round-trip, never move backward, and paging hands out every object once."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import TaxiiRequestError
from bus.services.taxii.cursor import ENDPOINTS, Cursor, Position, Query, decode, encode, take_page


@dataclass(frozen=True)
class R:
    partition: int
    offset: int
    seq: int
    timestamp_ms: int


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
queries = st.builds(
    Query,
    endpoint=st.sampled_from(ENDPOINTS),
    collection=st.uuids().map(str),
    added_after_us=st.none() | st.integers(0, 2**62),
    types=st.lists(texts, max_size=5).map(tuple),
    ids=st.lists(texts, max_size=5).map(tuple),
    versions=st.lists(texts, max_size=3).map(tuple),
    spec_versions=st.lists(st.sampled_from(["2.0", "2.1"]), max_size=2).map(tuple),
)
positions = st.dictionaries(st.integers(0, 500), st.builds(Position, st.integers(0, 2**53), st.integers(0, 1000)),
                            max_size=12).map(lambda d: tuple(sorted(d.items())))
cursors = st.builds(Cursor, queries, positions, st.integers(0, 10_000))


@given(cursors)
def test_a_cursor_survives_encoding(cursor):
    text = encode(cursor)
    assert decode(text) == cursor
    assert all(c.isalnum() or c in "-_" for c in text)  # safe in a URL query as it is


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_anything_else_is_refused_by_name(text):
    try:
        decode(text)
    except TaxiiRequestError as exc:
        assert exc.parameter == "next"


@pytest.mark.parametrize("document, problem", [
    ({"v": 2, "e": "objects", "c": "x", "p": []}, "older version"),
    ({"v": 1, "e": "status", "c": "x", "p": []}, "no endpoint"),
    ({"v": 1, "e": "objects", "c": "x", "p": [[0, -1, 0]]}, "non-negative"),
    ({"v": 1, "e": "objects", "c": "x", "p": [[0, 1, 0], [0, 2, 0]]}, "twice"),
    ({"v": 1, "e": "objects", "c": "x", "p": [], "t": "indicator"}, "list"),
    ({"v": 1, "e": "objects", "c": "x", "p": [], "extra": 1}, "never writes"),
])
def test_a_tampered_cursor_says_what_is_wrong(document, problem):
    text = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    with pytest.raises(TaxiiRequestError, match=problem):
        decode(text)


def test_a_cursor_too_long_is_refused_before_decoding():
    with pytest.raises(TaxiiRequestError, match="longer than"):
        decode("A" * 9000)


# -- paging -------------------------------------------------------------------------------------


@st.composite
def feeds(draw):
    """Per partition: records at increasing offsets (gaps: other types, compaction), each with
    1-4 objects, and Kafka timestamps that mostly rise but may step back."""
    out: dict[int, list[R]] = {}
    for partition in range(draw(st.integers(1, 4))):
        offset, rows = 0, []
        for _ in range(draw(st.integers(0, 12))):
            offset += draw(st.integers(0, 3))
            stamp = draw(st.integers(1_000, 1_040))
            rows += [R(partition, offset, seq, stamp) for seq in range(draw(st.integers(1, 4)))]
            offset += 1
        out[partition] = rows
    return out


def streams(feed: dict[int, list[R]], cursor: Cursor):
    return [iter([r for r in rows if (r.offset, r.seq) >= (cursor.position(p).offset, cursor.position(p).seq)])
            for p, rows in feed.items()]


def pos(cursor: Cursor, partition: int) -> tuple[int, int]:
    position = cursor.position(partition)
    return position.offset, position.seq


@given(feeds(), feeds(), st.lists(st.integers(1, 7), min_size=1, max_size=10))
@settings(max_examples=300, deadline=None)
def test_paging_hands_out_every_object_once_and_never_moves_back(first, later, limits):
    """Pages until the end, then records arrive (later offsets, any timestamps) and paging goes on."""
    feed = {p: list(rows) for p, rows in first.items()}
    cursor = Cursor(Query("objects", "c"))
    handed: list[R] = []

    def page_through(limit_cycle: list[int]) -> None:
        nonlocal cursor
        for i in range(1000):
            before = cursor
            page = take_page(cursor, streams(feed, cursor), limit_cycle[i % len(limit_cycle)])
            handed.extend(page.rows)
            for p in feed:
                assert pos(page.cursor, p) >= pos(before, p)
            for p in feed:  # each partition's rows in offset order within a page
                mine = [(r.offset, r.seq) for r in page.rows if r.partition == p]
                assert mine == sorted(mine)
            cursor = page.cursor
            if not page.more:
                return
        raise AssertionError("paging did not end")

    page_through(limits)
    for p, rows in later.items():
        end = max((r.offset for r in feed.get(p, [])), default=-1) + 1
        feed.setdefault(p, []).extend(R(p, r.offset + end, r.seq, r.timestamp_ms) for r in rows)
    page_through(limits)
    everything = [r for rows in feed.values() for r in rows]
    assert sorted(handed, key=repr) == sorted(everything, key=repr)


def test_a_page_takes_the_oldest_head_first_and_counts_only_what_counts():
    feed = {0: [R(0, 0, 0, 30), R(0, 0, 1, 30), R(0, 1, 0, 40)], 1: [R(1, 5, 0, 10), R(1, 6, 0, 35)]}
    repeated = {(0, 0, 1)}
    page = take_page(Cursor(Query("objects", "c")), streams(feed, Cursor(Query("objects", "c"))), 3,
                     counts=lambda r: (r.partition, r.offset, r.seq) not in repeated)
    assert [(r.partition, r.offset, r.seq) for r in page.rows] == [(1, 5, 0), (0, 0, 0), (0, 0, 1), (1, 6, 0)]
    assert page.counted == 3 and page.more
    assert page.cursor.position(0) == Position(0, 2) and page.cursor.position(1) == Position(6, 1)


def test_a_page_may_stop_early_when_it_looked_at_enough():
    feed = {0: [R(0, i, 0, i) for i in range(10)]}
    page = take_page(Cursor(Query("objects", "c")), streams(feed, Cursor(Query("objects", "c"))), 5,
                     counts=lambda r: False, max_rows=4)
    assert len(page.rows) == 4 and page.counted == 0 and page.more
