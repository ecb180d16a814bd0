"""Helpers for testing connectors in-process (used by this project's tests; handy for new connectors)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from connectors.sdk.config import ConnectorSettings, load_config
from connectors.sdk.runtime import Connector, Runtime


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def settings_for(connector_class: type[Connector], path: Path, data: dict[str, Any]) -> ConnectorSettings:
    """Write `data` as the YAML config and load it the way `bus connector run` does."""
    return load_config(connector_class.settings_class, write_config(path, data))


@contextmanager
def running(connector_class: type[Connector], settings: ConnectorSettings, *, ready: bool = True,
            timeout: float = 30.0) -> Iterator[Runtime]:
    """A connector running in a background thread; stopped (gracefully) on exit."""
    runtime = Runtime(connector_class, settings, configure_logging=False)
    thread = threading.Thread(target=runtime.run, name=f"connector-{connector_class.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not (runtime.is_ready() if ready else runtime.is_running()):
            if time.monotonic() > deadline or not thread.is_alive():
                raise TimeoutError(f"{connector_class.name} not {'ready' if ready else 'running'} "
                                   f"after {timeout}s: {runtime._ready()[1]}")
            time.sleep(0.05)
        yield runtime
    finally:
        runtime.stop()
        thread.join(timeout)
