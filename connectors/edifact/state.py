"""Per-container history, persisted so rules can compare events across files.

"Seal changed between events" needs the seal seen at gate-in when the gate-out
arrives in another file, days later. The state also remembers which files it
already absorbed (by SHA-256): a crash after the state was saved but before
the file was moved must not apply, or publish, the same file twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bus.errors import ConnectorConfigError
from connectors.sdk.files import atomic_write_json

STATE_VERSION = 1
MAX_APPLIED = 5000


@dataclass
class ContainerState:
    seals: list[str] = field(default_factory=list)
    seals_seen: str = ""  # "gate-in 2026-11-20T08:05Z at NLRTM": where the seals were recorded
    released: bool = False
    release_refs: list[str] = field(default_factory=list)
    last_event: str = ""
    last_time: str | None = None
    alerted: list[str] = field(default_factory=list)  # once-per-visit findings already raised

    def copy(self) -> ContainerState:
        return ContainerState(**json.loads(json.dumps(asdict(self))))


Containers = dict[str, ContainerState]


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.containers: Containers = {}
        self.applied: list[str] = []
        self.load()

    def load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown state version {data.get('version')!r}")
            self.containers = {k: ContainerState(**v) for k, v in data.get("containers", {}).items()}
            self.applied = list(data.get("applied", []))
        except (OSError, ValueError, TypeError) as exc:
            # Starting from nothing would silently forget seals: let the operator decide.
            raise ConnectorConfigError(str(self.path), [f"EDIFACT state file is unreadable: {exc}"]) from None

    def snapshot(self) -> Containers:
        return {k: v.copy() for k, v in self.containers.items()}

    def is_applied(self, sha256: str) -> bool:
        return sha256 in self.applied

    def commit(self, containers: Containers, sha256: str) -> None:
        """Replace the state with the one computed from a completed file, durably."""
        applied = [*self.applied, sha256][-MAX_APPLIED:]
        atomic_write_json(self.path, {
            "version": STATE_VERSION,
            "applied": applied,
            "containers": {k: asdict(v) for k, v in sorted(containers.items())},
        })
        self.containers, self.applied = containers, applied
