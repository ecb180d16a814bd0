"""`bus tail --since`: a duration back from now (`1h`, `2d`) or an ISO 8601 time.

An officer asks "what came in over the last hour", not "since 2026-01-05T09:14:00Z",
so both spellings are accepted; anything else is an error that lists the forms.
Times without an offset are UTC, as everywhere on the bus.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bus.errors import InvalidInput

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
"""Duration units: s(econds), m(inutes), h(ours), d(ays), w(eeks)."""
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")

ACCEPTED = ("a duration back from now (90s, 30m, 1h, 2d, 1w) or an ISO 8601 time "
            "(2026-01-05, 2026-01-05T10:00:00, 2026-01-05T10:00:00Z, 2026-01-05T10:00:00+02:00; "
            "UTC unless an offset is given)")
"""The forms, as the error and the option's help name them."""


def parse_since(text: str, now: datetime) -> datetime:
    """The aware UTC time `text` names, relative to `now` for a duration.

    Raises `InvalidInput` naming `--since` and the accepted forms for anything else.
    """
    spelled = text.strip()
    duration = _DURATION.fullmatch(spelled)
    try:
        if duration is not None:
            amount, unit = duration.groups()
            return (now - timedelta(**{UNITS[unit]: int(amount)})).astimezone(UTC)
        when = datetime.fromisoformat(spelled)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        pass  # out of range, or not a time at all: the same answer
    raise InvalidInput(f"--since {text!r} is not a time: give {ACCEPTED}",
                       [("--since", f"{text!r} is neither a duration nor an ISO 8601 time")])


__all__ = ["ACCEPTED", "parse_since"]
