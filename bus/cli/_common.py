"""Shared CLI plumbing: Kafka connection options, error reporting, consoles."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bus.config import KafkaSettings, load_settings
from bus.errors import BusError

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

_KAFKA_PARAMS: dict[str, Any] = {
    "bootstrap": Annotated[
        str | None,
        typer.Option("--bootstrap", envvar="BUS_BOOTSTRAP", help="Kafka bootstrap servers (host:port,...).",
                     rich_help_panel="Kafka connection"),
    ],
    "config": Annotated[
        Path | None,
        typer.Option("--config", envvar="BUS_CONFIG", help="YAML config file with connection settings.",
                     rich_help_panel="Kafka connection"),
    ],
    "security_protocol": Annotated[
        str | None,
        typer.Option("--security-protocol", envvar="BUS_SECURITY_PROTOCOL",
                     help="PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL.", rich_help_panel="Kafka connection"),
    ],
    "sasl_username": Annotated[
        str | None,
        typer.Option("--sasl-username", envvar="BUS_SASL_USERNAME", help="SCRAM user.",
                     rich_help_panel="Kafka connection"),
    ],
    "sasl_password": Annotated[
        str | None,
        typer.Option("--sasl-password", envvar="BUS_SASL_PASSWORD", show_default=False,
                     help="SCRAM password (prefer the environment variable).",
                     rich_help_panel="Kafka connection"),
    ],
    "ssl_cafile": Annotated[
        Path | None,
        typer.Option("--ssl-cafile", envvar="BUS_SSL_CAFILE", help="CA bundle for TLS listeners.",
                     rich_help_panel="Kafka connection"),
    ],
}


def kafka_options(func: F) -> F:
    """Give a command the standard connection flags and pass it `settings: KafkaSettings`."""
    sig = inspect.signature(func, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "settings"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in _KAFKA_PARAMS.items()
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        conn = {name: kwargs.pop(name, None) for name in _KAFKA_PARAMS}
        config = conn.pop("config")
        try:
            settings = load_settings(config, **conn)
        except BusError as exc:
            fail(str(exc))
        return func(*args, settings=settings, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit non-zero (never a traceback)."""
    # escape: messages quote user data and field paths like `rules[2]`, which are not markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn BusError into a clean message and the error class's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BusError as exc:
            fail(str(exc), exc.exit_code)

    return wrapper  # type: ignore[return-value]


__all__ = ["KafkaSettings", "err", "fail", "handle_errors", "kafka_options", "out"]
