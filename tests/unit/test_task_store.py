"""A routing task's local store: never ahead of the changelog, evicted by time, reset if the changelog was."""

from __future__ import annotations

from pathlib import Path

from bus.adapters.task_store import RoutedEntry, TaskStore


def entry(mid: str, created_ms: int = 1000) -> RoutedEntry:
    return RoutedEntry(mid, created_ms, "NL-CUSTOMS", ("EUROPOL", "BE-CUSTOMS"))


def test_entries_and_the_changelog_offset_move_together_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "task-3.sqlite"
    store = TaskStore(path)
    assert store.changelog_offset == 0 and store.get("a") is None
    store.apply([entry("a"), entry("b")], next_offset=7)
    store.close()
    again = TaskStore(path)
    assert again.changelog_offset == 7
    assert again.get("a") == entry("a") and again.contains("b") and not again.contains("c")
    again.apply([], next_offset=3)  # an older offset never moves it back
    assert again.changelog_offset == 7


def test_eviction_forgets_what_left_the_window_and_tombstones_delete(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "t.sqlite")
    store.apply([entry("old", 1_000), entry("new", 9_000)], next_offset=2)
    assert store.evict(5_000) == 1
    assert not store.contains("old") and store.contains("new")
    store.forget(["new"], next_offset=3)
    assert store.count() == 0 and store.changelog_offset == 3
    store.reset()
    assert store.changelog_offset == 0


def test_changelog_values_round_trip_and_junk_is_not_an_entry() -> None:
    e = entry("m")
    assert RoutedEntry.decode(e.key(), e.value()) == e
    assert RoutedEntry.decode(b"m", b"not json") is None
    assert RoutedEntry.decode(b"m", None) is None
