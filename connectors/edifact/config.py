"""edifact settings: inbox, rules and the header of the alerts the rules raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from bus.core.models import RiskIndicator
from connectors.edifact.parse import DEFAULT_EVENT_CODES
from connectors.sdk.config import ConnectorSettings, Section
from connectors.sdk.inbox import InboxSettings

DEFAULT_ALERT_HEADER: dict[str, Any] = {
    "tlp": "AMBER",
    "handling_codes": ["H1"],
    "source_reliability": "B",
    "information_assessment": "2",
}


class WatchlistRule(Section):
    """Container loaded at a watch-listed port (once per container visit)."""

    enabled: bool = True
    ports: list[str] = Field(default_factory=list, description="UN/LOCODEs, e.g. ECGYE, COCTG.")
    events: list[str] | None = Field(None, description="Only these events (default: any).")
    risk_indicator: RiskIndicator = RiskIndicator.HIGH_RISK_ORIGIN

    @field_validator("ports")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [p.strip().upper().replace(" ", "") for p in value]


class SealChangedRule(Section):
    """Seal numbers differ from the ones recorded at the container's previous event."""

    enabled: bool = True
    risk_indicator: RiskIndicator = RiskIndicator.SEAL_TAMPERING


class GateOutWithoutReleaseRule(Section):
    """Full container gated out with no release (COREOR, or an RFF release reference)."""

    enabled: bool = True
    release_qualifiers: list[str] = Field(default_factory=lambda: ["RE"],
                                          description="RFF qualifiers that carry a release number.")
    full_only: bool = Field(True, description="Empty containers need no customs release.")
    risk_indicator: RiskIndicator = RiskIndicator.RIP_ON_RIP_OFF


class RulesSettings(Section):
    watchlisted_port_of_loading: WatchlistRule = WatchlistRule()
    seal_changed: SealChangedRule = SealChangedRule()
    gate_out_without_release: GateOutWithoutReleaseRule = GateOutWithoutReleaseRule()


class EdifactInbox(InboxSettings):
    state_file: Path | None = Field(None, description="Container history (default: <state_dir>/containers.json).")
    suffixes: list[str] = Field(default_factory=lambda: [".edi", ".edifact"])
    encoding: str = Field("iso8859-1", description="Character set of the files (UNOC = ISO 8859-1).")
    event_codes: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_EVENT_CODES.items()},
        description="Message type -> BGM document code -> event (gate-in, gate-out, discharge, load).")
    rules: RulesSettings = RulesSettings()
    alert_header: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_ALERT_HEADER),
                                         description="Header fields of every alert raised.")
    expires_after_days: int | None = Field(30, ge=1, description="Alert expiry; null for none.")

    @property
    def state_path(self) -> Path:
        return self.state_file or self.state / "containers.json"


class EdifactSettings(ConnectorSettings):
    edifact: EdifactInbox
