"""`bus publish` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's top-level command(s) to the root app."""
