"""Connector names -> classes.

Built-in connectors are listed here by import path, so running one connector
imports only that one; third-party connectors register through the
`epa_bus.connectors` entry-point group without touching this file.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from bus.errors import BusError

if TYPE_CHECKING:
    from connectors.sdk.runtime import Connector

ENTRY_POINT_GROUP = "epa_bus.connectors"

BUILTIN: dict[str, str] = {
    "http-ingest": "connectors.http_ingest.connector:HttpIngestConnector",
    "directory-drop": "connectors.directory_drop.connector:DirectoryDropConnector",
    "edifact": "connectors.edifact.connector:EdifactConnector",
}


def available() -> dict[str, str]:
    """name -> "module:Class" for every connector this installation can run."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def load_connector(name: str) -> type[Connector]:
    from connectors.sdk.runtime import Connector

    targets = available()
    if name not in targets:
        raise BusError(f"unknown connector {name!r}; available: {', '.join(sorted(targets))}")
    module_name, _, attr = targets[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise BusError(f"{targets[name]} is not a Connector subclass")
    return cls


def summary(name: str) -> str:
    """First line of the connector's docstring, for `bus connector list`."""
    doc = load_connector(name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
