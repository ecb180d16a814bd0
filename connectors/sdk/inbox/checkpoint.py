"""Per-file checkpoints: how far Kafka acknowledged, and where to look on resume.

`acked` counts valid rows acknowledged by Kafka. A crash can still fall
between Kafka's acknowledgement and the checkpoint write; `scan_from` records,
per topic partition, an offset at or before which anything published after
the checkpoint must sit, so a resume reads only that tail to recognise the
stable message ids that already made it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from connectors.sdk.files import atomic_write_json

#: topic -> partition -> offset
Offsets = dict[str, dict[int, int]]


@dataclass
class Checkpoint:
    file: str
    sha256: str
    created: str  # ISO 8601 UTC; the `created` of alerts that do not carry one
    total: int
    acked: int = 0
    scan_from: Offsets = field(default_factory=dict)
    updated: str = ""

    def advance(self, rows: int, offsets: list[tuple[str, int, int]]) -> None:
        """`rows` more acknowledged; the next unknown record of a partition is after these."""
        self.acked += rows
        for topic, partition, offset in offsets:
            current = self.scan_from.setdefault(topic, {})
            current[partition] = max(current.get(partition, 0), offset + 1)

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created)


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, name: str) -> Path:
        return self.directory / f"{name}.checkpoint.json"

    def load(self, name: str) -> Checkpoint | None:
        path = self.path_for(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable means we never finished writing one: start over
        data["scan_from"] = {t: {int(p): int(o) for p, o in parts.items()}
                             for t, parts in data.get("scan_from", {}).items()}
        return Checkpoint(**data)

    def save(self, checkpoint: Checkpoint) -> None:
        checkpoint.updated = datetime.now(UTC).isoformat()
        atomic_write_json(self.path_for(checkpoint.file), asdict(checkpoint))

    def delete(self, name: str) -> None:
        self.path_for(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        suffix = ".checkpoint.json"
        if not self.directory.is_dir():
            return []
        return [p.name[: -len(suffix)] for p in self.directory.glob(f"*{suffix}")]
