"""The edifact connector."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from bus.core.models import parse_alert
from bus.errors import AlertValidationError, ConnectorConfigError
from connectors.edifact.config import EdifactSettings
from connectors.edifact.handler import EdifactHandler
from connectors.edifact.state import StateStore
from connectors.sdk.inbox import FileHandler, InboxConnector, InboxSettings


class EdifactConnector(InboxConnector):
    """Reads UN/EDIFACT container messages (CODECO, COARRI, COREOR) and raises suspicious-container alerts by rule."""

    name = "edifact"
    settings_class: ClassVar[type[EdifactSettings]] = EdifactSettings
    settings: EdifactSettings

    def inbox_settings(self) -> InboxSettings:
        return self.settings.edifact

    def make_handler(self) -> FileHandler:
        settings = self.settings.edifact
        self._check_alert_header()
        return EdifactHandler(settings, self.settings.member, StateStore(settings.state_path),
                              empact_codes=self.services.empact_codes)

    def _check_alert_header(self) -> None:
        """A bad TLP in the config must stop the start, not fail every alert at run time."""
        header = {**self.settings.edifact.alert_header, "summary": "configuration check",
                  "created": datetime.now(UTC).isoformat()}
        probe = {"header": header, "container_number": "CSQU3054383"}
        try:
            parse_alert(probe, empact_codes=self.services.empact_codes, alert_type="suspicious-container",
                        producer=self.settings.member)
        except AlertValidationError as exc:
            raise ConnectorConfigError("edifact.alert_header", [f"{loc}: {msg}" for loc, msg in exc.errors]) from None
