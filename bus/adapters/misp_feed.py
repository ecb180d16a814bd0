"""A MISP feed folder on disk, and the galaxy data MISP events are tagged with.

The folder is what a MISP instance subscribes to as a feed of type "MISP
Feed" (over HTTP(S) from any static web server, or as a local path on the MISP
server): one `<event uuid>.json` per event, `manifest.json` listing every
event with its metadata, and `hashes.csv` (MD5 of each attribute value, then
the event uuid) for MISP's feed cache and correlation.

Writing adds or replaces events and then rebuilds the manifest and hashes
from every event file in the folder, so periodic exports accumulate into one
feed and the manifest can never miss an event. Each file is written to a
temporary name and renamed, so a MISP instance fetching meanwhile sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pymisp import MISPEvent, PyMISPError
from pymispgalaxies.api import Cluster

from bus.errors import InvalidInput

MANIFEST = "manifest.json"
HASHES = "hashes.csv"
_EVENT_FILE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json")


def country_galaxy() -> dict[str, str]:
    """ISO 3166 alpha-2 -> value of MISP's `country` galaxy cluster (e.g. NL -> netherlands)."""
    text = (resources.files("pymispgalaxies") / "data" / "misp-galaxy" / "clusters" / "country.json").read_text(
        encoding="utf-8")
    cluster = Cluster(json.loads(text))
    mapping: dict[str, str] = {}
    for value in cluster.values():
        extra = value.meta.additional_properties if value.meta is not None else None
        iso = (extra or {}).get("ISO")
        if isinstance(iso, str) and len(iso) == 2:
            mapping[iso.upper()] = value.value
    return mapping


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # served to MISP by a web server; the umask may say otherwise
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class FeedWritten:
    """What `write_feed` did: events written now, and events the manifest lists in total."""

    directory: Path
    written: tuple[str, ...]
    listed: int


def write_feed(events: Iterable[MISPEvent], directory: Path) -> FeedWritten:
    """Write (or replace) each event's file, then rebuild `manifest.json` and `hashes.csv`."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for event in events:
        _write_atomic(directory / f"{event.uuid}.json", _dump(event.to_feed()))
        written.append(str(event.uuid))
    manifest, hashes = _index(directory)
    _write_atomic(directory / MANIFEST, _dump(manifest))
    _write_atomic(directory / HASHES, "".join(f"{line}\n" for line in hashes))
    return FeedWritten(directory, tuple(written), len(manifest))


def _index(directory: Path) -> tuple[dict[str, Any], list[str]]:
    manifest: dict[str, Any] = {}
    hashes: list[str] = []
    for path in sorted(directory.iterdir()):
        if not _EVENT_FILE.fullmatch(path.name):
            continue
        event = read_event(path)
        manifest.update(event.manifest)
        hashes += [f"{digest},{event.uuid}" for digest in event.attributes_hashes("md5")]
    return dict(sorted(manifest.items())), sorted(hashes)


def read_event(path: Path) -> MISPEvent:
    """Load one event file of a feed; a broken file is named, not skipped."""
    event = MISPEvent()
    try:
        event.load_file(str(path))
    except (OSError, ValueError, KeyError, TypeError, PyMISPError) as exc:
        raise InvalidInput(f"{path}: not a MISP feed event file ({exc})") from exc
    if f"{event.uuid}.json" != path.name:
        raise InvalidInput(f"{path}: holds event {event.uuid}; a feed names each file after its event")
    return event
