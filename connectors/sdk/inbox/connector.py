"""Base class of connectors that watch an inbox folder."""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any

from connectors.sdk.inbox.handler import FileHandler
from connectors.sdk.inbox.pipeline import InboxPipeline
from connectors.sdk.inbox.settings import InboxSettings
from connectors.sdk.runtime import Connector, Services


class InboxConnector(Connector):
    """Polls the inbox and hands each settled file to the pipeline."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.inbox = self.inbox_settings()
        self.pipeline = InboxPipeline(self.inbox, self.make_handler(), services)
        self.pipeline.prepare()
        self._errors = services.metrics.counter(
            "bus_connector_internal_errors", "Unexpected errors while handling a file.", ["stage"])

    @abstractmethod
    def inbox_settings(self) -> InboxSettings: ...

    @abstractmethod
    def make_handler(self) -> FileHandler: ...

    def run(self) -> None:
        stop = self.services.stop
        while not stop.is_set():
            self.services.beat()
            try:
                self.pipeline.run_once()
            except Exception:  # keep serving other files; the log says what broke
                self._errors.labels(self.services.name, "file").inc()
                self.log.exception("unexpected error while handling the inbox")
            stop.wait(self.inbox.poll_interval_s)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        inbox = self.inbox.inbox
        writable = inbox.is_dir() and os.access(inbox, os.W_OK)
        return writable, {"inbox": str(inbox) if writable else f"{inbox} missing or not writable"}
