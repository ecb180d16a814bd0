"""Where exported alerts come from: a file, or a range of a Kafka topic read like `bus tail`.

Shared by `bus stix export` and `bus misp export`. The Kafka side is one call
into `bus.services.reader.FeedReader` (verifying every record against the
trust directory or a key folder, exactly as `bus tail` does); records that fail
verification are reported on stderr and left out, never exported.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bus.cli._common import KafkaSettings, err
from bus.cli._untrusted import shown
from bus.core.models import AlertType, BaseAlert
from bus.errors import BusError

INPUT_PANEL = "Input"

#: Options every export command takes, in addition to the Kafka connection options.
SOURCE_OPTIONS: dict[str, Any] = {
    "source": Annotated[
        Path | None,
        typer.Argument(help="alert.json (object or array) or alerts.jsonl, e.g. the output of `bus tail --json`. "
                       "Omit it and give --topic to read from Kafka instead.", show_default=False),
    ],
    "topic": Annotated[
        str | None,
        typer.Option("--topic", help="Read this topic (e.g. feed.europol) instead of a file.",
                     rich_help_panel=INPUT_PANEL),
    ],
    "keys": Annotated[
        Path | None,
        typer.Option("--keys", envvar="BUS_KEYS", help="Folder of <MEMBER>.pub files (with --topic).",
                     rich_help_panel=INPUT_PANEL),
    ],
    "federation": Annotated[
        Path | None,
        typer.Option("--federation", envvar="BUS_FEDERATION", help="Signed federation directory (with --topic).",
                     rich_help_panel=INPUT_PANEL),
    ],
    "authority_pub": Annotated[
        Path | None,
        typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB", help="Federation authority key.",
                     rich_help_panel=INPUT_PANEL),
    ],
    "since": Annotated[
        datetime | None,
        typer.Option("--since", help="With --topic: records written at or after this time (UTC).",
                     rich_help_panel=INPUT_PANEL),
    ],
    "until": Annotated[
        datetime | None,
        typer.Option("--until", help="With --topic: records written before this time (UTC).",
                     rich_help_panel=INPUT_PANEL),
    ],
    "alert_type": Annotated[
        AlertType | None,
        typer.Option("--type", help="Only this alert type.", rich_help_panel=INPUT_PANEL),
    ],
}


@dataclass(frozen=True)
class AlertSource:
    source: Path | None
    topic: str | None
    keys: Path | None
    federation: Path | None
    authority_pub: Path | None
    since: datetime | None
    until: datetime | None
    alert_type: AlertType | None


F = TypeVar("F", bound=Callable[..., Any])


def alert_source_options(func: F) -> F:
    """Give a command the input flags above and pass it `src: AlertSource` (like `kafka_options`)."""
    sig = inspect.signature(func, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "src"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in SOURCE_OPTIONS.items()
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        src = AlertSource(**{name: kwargs.pop(name, None) for name in SOURCE_OPTIONS})
        return func(*args, src=src, **kwargs)

    keyword_only = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    wrapper.__signature__ = sig.replace(parameters=[*positional, *extra, *keyword_only])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_alerts(src: AlertSource, settings: KafkaSettings) -> list[BaseAlert]:
    """The selected alerts, in input order; what was left out is reported on stderr."""
    if (src.source is None) == (src.topic is None):
        raise BusError("give either a file of alerts or --topic TOPIC")
    if src.source is not None:
        if src.since or src.until:
            raise BusError("--since and --until select a range of a topic; they need --topic, not a file")
        alerts, skipped = _from_file(src.source)
    else:
        assert src.topic is not None
        alerts, skipped = _from_topic(src, settings)
    for line in skipped:
        err.print(f"[yellow]skipped:[/] {shown(line)}", highlight=False, soft_wrap=True)
    if src.alert_type is not None:
        alerts = [a for a in alerts if a.alert_type is src.alert_type]
    return alerts


def _from_file(path: Path) -> tuple[list[BaseAlert], list[str]]:
    from bus.adapters.alert_files import load_recorded_alerts

    recorded = load_recorded_alerts(path)
    return recorded.alerts, recorded.unverified


def _from_topic(src: AlertSource, settings: KafkaSettings) -> tuple[list[BaseAlert], list[str]]:
    from bus.cli._resolver import resolver_from
    from bus.composition import Bus

    assert src.topic is not None
    resolver = resolver_from(src.keys, src.federation, src.authority_pub)
    since, until = _utc(src.since), _utc(src.until)
    until_ms = int(until.timestamp() * 1000) if until is not None else None
    alerts: list[BaseAlert] = []
    skipped: list[str] = []
    with Bus(settings).feed_reader(src.topic, resolver, from_beginning=True, follow=False, since=since) as reader:
        for rec in reader.records():
            if until_ms is not None and rec.timestamp_ms is not None and rec.timestamp_ms >= until_ms:
                continue
            if rec.verified is None:
                assert rec.error is not None
                skipped.append(f"{rec.topic}[{rec.partition}]@{rec.offset} failed verification "
                               f"({rec.error.reason}: {rec.error.detail})")
                continue
            alerts.append(rec.verified.alert)
    return alerts, skipped
