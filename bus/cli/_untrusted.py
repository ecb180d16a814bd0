"""Text from other members, shown safely on a terminal.

Records, receipts, audit entries and dead-letter details carry strings another member chose:
a sender can write `[bold red]` (which rich would read as markup and restyle or hide the
rest of the line) or `\\x1b[2J` (which a terminal would obey and clear the screen with).
Everything a command prints that it did not write itself goes through `printable` (for
rich `Text`, which is never markup) or `shown` (for strings printed as markup).
"""

from __future__ import annotations

from rich.markup import escape

__all__ = ["printable", "shown"]

_LINE_BREAKS = "\n\r\t\v\f"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with nothing a terminal would act on: control and unprintable characters become
    their escape (`\\x1b`); line breaks and tabs become spaces, unless `lines` keeps `\\n`; a
    final backslash is spelled `\\x5c`, so that it cannot escape whatever is printed after it."""
    out = []
    for char in text:
        if lines and char == "\n":
            out.append(char)
        elif char in _LINE_BREAKS:
            out.append(" ")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    if out and out[-1] == "\\":  # a trailing backslash would escape the markup printed after it
        out[-1] = "\\x5c"
    return "".join(out)


def shown(value: object, *, lines: bool = False) -> str:
    """`value` as a string to embed in rich markup: printable, and its brackets escaped so it
    is shown as written, never read as a style."""
    return escape(printable(str(value), lines=lines))
