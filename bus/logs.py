"""structlog configuration: JSON lines for services, readable output on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (not when logging was configured), so a
    logger cached by structlog keeps working after the stream is replaced (test capture, daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stderr, name)


def configure(json: bool | None = None, level: str = "INFO") -> None:
    """Call once at process start. `json=None` picks JSON unless stderr is a TTY."""
    if json is None:
        json = not sys.stderr.isatty()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.NOTSET)
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def quiet() -> None:
    """CLI commands print their own output; keep library logs to warnings, kafka-python's to errors
    (it warns on every SASL_PLAINTEXT login, which the local secured broker uses by design)."""
    configure(json=False, level="WARNING")
    logging.getLogger("kafka").setLevel(logging.ERROR)
