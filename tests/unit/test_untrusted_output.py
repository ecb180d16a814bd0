"""What other members wrote reaches the terminal as text: never as rich markup, never as
terminal control sequences (`bus audit tail`, `bus receipts`, error lines)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.adapters.kafka.memory import MemoryEngine
from bus.cli import app
from bus.cli._untrusted import printable, shown

HOSTILE = "[bold red]FORGED[/] \x1b[2J\x1b]0;owned\x07 done"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> MemoryEngine:
    memory = MemoryEngine()
    monkeypatch.setattr("bus.composition.open_engine", lambda settings: memory)
    return memory


def audit_tail(engine: MemoryEngine, entry: dict[str, object]) -> str:
    engine.create_topic("audit")
    engine.produce_raw("audit", 0, json.dumps(entry).encode())
    result = CliRunner().invoke(app, ["audit", "tail", "--bootstrap", "memory:9092"],
                                env={"COLUMNS": "300", "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert result.exit_code == 0, result.output
    return result.output


def test_audit_tail_shows_a_hostile_rejection_as_written_and_obeys_none_of_it(engine: MemoryEngine) -> None:
    output = audit_tail(engine, {
        "chain": 0, "seq": 7, "routed_at": "2026-11-30T10:00:00Z", "outcome": "rejected",
        "record": "alert", "producer": "[blink]NL-CUSTOMS", "message_id": "m\x1b[1Aid",
        "reason": f"bad-schema: {HOSTILE}",
    })
    assert "\x1b[2J" not in output and "\x1b]0;" not in output and "\x07" not in output
    assert "\x1b[1A" not in output
    # The markup is shown as text (so a reader sees the attempt), not applied as style.
    assert "[bold red]FORGED[/]" in output
    assert "[blink]NL-CUSTOMS" in output
    assert "\\x1b[2J" in output  # the escape, spelled out
    assert "\x1b[1;31m" not in output and "\x1b[5m" not in output  # no bold red, no blink from the sender


def test_audit_tail_shows_hostile_recipients_of_a_routed_entry_as_text(engine: MemoryEngine) -> None:
    output = audit_tail(engine, {
        "chain": 1, "seq": 2, "routed_at": "2026-11-30T10:00:00Z", "outcome": "routed",
        "alert_type": "suspicious-container", "producer": "NL-CUSTOMS", "message_id": "m1",
        "recipients": ["EUROPOL", "[reverse]X\x1b[2J"],
    })
    assert "[reverse]X\\x1b[2J" in output
    assert "\x1b[2J" not in output and "\x1b[7m" not in output


@given(st.text())
def test_shown_text_renders_back_to_exactly_its_printable_form(text: str) -> None:
    """Whatever a sender writes, rich prints `printable(text)` character for character."""
    from rich.console import Console
    from rich.text import Text

    rendered = Text.from_markup(shown(text))
    assert rendered.plain == printable(text)
    assert not rendered.spans  # no style came from the text
    followed = Text.from_markup(shown(text) + "[bold]!")  # nor does it bend the markup printed after it
    assert followed.plain == printable(text) + "!" and len(followed.spans) == 1
    console = Console(width=10_000, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(shown(text), highlight=False, end="")
    assert all(c.isprintable() or c == "\n" for c in captured.get())


def test_printable_keeps_line_breaks_only_when_asked() -> None:
    assert printable("a\nb\tc\x00") == "a b c\\x00"
    assert printable("a\nb\x1b", lines=True) == "a\nb\\x1b"
