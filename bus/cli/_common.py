"""Shared CLI plumbing: Kafka connection options, error reporting, consoles.

Every error a command meets is one line on stderr and the exit code of its class in
`bus.errors` (the README's CLI reference lists them): 2 for anything a human must fix in
what they gave, 3 Kafka unreachable, 4 authentication failed, 5 not authorised (naming
the topic or group), 6 TLS failed, 7 protocol mismatch, 8 alerts rejected, 9 a wait that
timed out, 10 another member's signing key. Client-library log lines never reach the
console (`bus.logs`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from bus.cli._untrusted import shown
from bus.config import KafkaSettings, load_settings
from bus.errors import BusError, KafkaError, NotAuthorized

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
    "engine": Annotated[
        str | None,
        typer.Option("--engine", envvar="BUS_KAFKA_ENGINE", show_default="confluent",
                     help="Kafka client: confluent (librdkafka) or kafka-python.",
                     rich_help_panel="Kafka connection"),
    ],
}

FederationOpt = Annotated[
    Path | None, typer.Option("--federation", envvar="BUS_FEDERATION", help="Signed federation directory.")
]
AuthorityPubOpt = Annotated[
    Path | None, typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB",
                              help="Federation authority key (public): what the directory's signature is checked with.")
]
AcceptV10UntilOpt = Annotated[
    datetime | None,
    typer.Option("--accept-v1-0-until", envvar="BUS_ACCEPT_V1_0_UNTIL",
                 formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                 help="End of the wire format 1.0 transition window (UTC; default 2027-06-01): 1.0 records "
                      "created later are refused."),
]
"""The one transition window every reader and the router share (docs/wire-format.md)."""
DecryptKeysOpt = Annotated[
    list[Path] | None,
    typer.Option("--decrypt-key", help="The member's X25519 private key (<MEMBER>.enc.key) to read encrypted "
                                       "alerts; repeat it to include keys rotated out."),
]


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
            fail(str(exc), exc.exit_code)
        return func(*args, settings=settings, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit non-zero (never a traceback)."""
    # messages quote user data (and field paths like `rules[2]`, which are not markup): shown as written
    err.print(f"[bold red]error:[/] {shown(message, lines=True)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def describe_error(exc: BusError, settings: KafkaSettings | None = None) -> str:
    """The one line a user sees: the error's own message, and for a denial who was denied."""
    message = " ".join(str(exc).split()) if isinstance(exc, KafkaError) else str(exc)
    if isinstance(exc, NotAuthorized) and settings is not None:
        who = settings.sasl_username or "an anonymous client"
        message += f" (connected as {who})"
    return message


def handle_errors(func: F) -> F:
    """Turn a BusError into one line on stderr and the exit code of its class."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BusError as exc:
            fail(describe_error(exc, kwargs.get("settings")), exc.exit_code)

    return wrapper  # type: ignore[return-value]


__all__ = ["KafkaSettings", "describe_error", "err", "fail", "handle_errors", "kafka_options", "out"]
