"""Inbox folder settings shared by file-based connectors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from connectors.sdk.config import Section


class InboxSettings(Section):
    """Where files arrive and where they go once handled."""

    inbox: Path = Field(description="Folder watched for new files.")
    done_dir: Path | None = Field(None, description="Published files (default: <inbox>/done).")
    failed_dir: Path | None = Field(None, description="Rejected files + reports (default: <inbox>/failed).")
    state_dir: Path | None = Field(None, description="Checkpoints (default: <inbox>/.state).")
    poll_interval_s: float = Field(1.0, gt=0, description="Seconds between folder scans.")
    settle_s: float = Field(2.0, ge=0, description="Leave files alone until unmodified this long.")
    batch_size: int = Field(100, ge=1, le=10000, description="Alerts per Kafka acknowledgement.")
    throttle_s: float = Field(0.0, ge=0, description="Pause between batches (spreads load).")
    invalid_rows: Literal["reject-file", "skip"] = Field(
        "reject-file",
        description="reject-file: one invalid row fails the whole file, nothing is published; "
        "skip: publish the valid rows, move the file to failed/ with a report of the rest.",
    )

    @property
    def done(self) -> Path:
        return self.done_dir or self.inbox / "done"

    @property
    def failed(self) -> Path:
        return self.failed_dir or self.inbox / "failed"

    @property
    def state(self) -> Path:
        return self.state_dir or self.inbox / ".state"
