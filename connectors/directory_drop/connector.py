"""The directory-drop connector."""

from __future__ import annotations

from typing import ClassVar

from connectors.directory_drop.config import DirectoryDropSettings
from connectors.directory_drop.handler import DropHandler
from connectors.sdk.inbox import FileHandler, InboxConnector, InboxSettings


class DirectoryDropConnector(InboxConnector):
    """Publishes .json, .jsonl and .csv alert files dropped in a folder; moves them to done/ or failed/."""

    name = "directory-drop"
    settings_class: ClassVar[type[DirectoryDropSettings]] = DirectoryDropSettings
    settings: DirectoryDropSettings

    def inbox_settings(self) -> InboxSettings:
        return self.settings.directory_drop

    def make_handler(self) -> FileHandler:
        return DropHandler(self.settings.directory_drop, self.settings.member,
                           empact_codes=self.services.empact_codes)
