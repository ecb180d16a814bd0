"""Rules over container events: pure functions of (event, previous state).

Each rule returns a finding (risk indicator + reason) or nothing; `apply`
also advances the container's state. Being pure and ordered, the same file on
the same state always gives the same findings, which is what makes a resumed
file publish exactly the alerts it would have published the first time.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.core.models import RiskIndicator
from connectors.edifact.config import RulesSettings
from connectors.edifact.parse import EquipmentEvent
from connectors.edifact.state import ContainerState


@dataclass(frozen=True)
class Finding:
    rule: str
    indicator: RiskIndicator
    reason: str


def describe(event: EquipmentEvent) -> str:
    when = event.time.strftime("%Y-%m-%d %H:%MZ") if event.time else "time unknown"
    at = f" at {event.place}" if event.place else ""
    return f"{event.event} {when}{at}"


def apply(event: EquipmentEvent, previous: ContainerState | None,
          rules: RulesSettings) -> tuple[list[Finding], ContainerState]:
    state = previous.copy() if previous else ContainerState()
    findings: list[Finding] = []

    watch = rules.watchlisted_port_of_loading
    pol = (event.port_of_loading or "").upper()
    if (watch.enabled and pol and pol in watch.ports
            and (watch.events is None or event.event in watch.events)
            and f"watchlist:{pol}" not in state.alerted):
        findings.append(Finding("watchlisted_port_of_loading", watch.risk_indicator,
                                f"loaded at watch-listed port {pol}"))
        state.alerted.append(f"watchlist:{pol}")

    seal = rules.seal_changed
    if event.seals:
        if seal.enabled and state.seals and set(event.seals) != set(state.seals):
            findings.append(Finding(
                "seal_changed", seal.risk_indicator,
                f"seal changed: {', '.join(state.seals)} ({state.seals_seen}) -> "
                f"{', '.join(event.seals)} ({describe(event)})"))
        state.seals, state.seals_seen = list(event.seals), describe(event)

    gate = rules.gate_out_without_release
    release_refs = [ref for q in gate.release_qualifiers for ref in event.references.get(q, ())]
    if event.event == "release" or release_refs:
        state.released = True
        state.release_refs = list(dict.fromkeys([*state.release_refs, *release_refs]))
    if event.event == "gate-out":
        if gate.enabled and not state.released and not (gate.full_only and event.full is False):
            findings.append(Finding("gate_out_without_release", gate.risk_indicator,
                                    "gated out without a customs/carrier release"))
        # The visit ends here: the next arrival needs its own release and may alert again.
        state.released, state.release_refs, state.alerted = False, [], []

    state.last_event = event.event
    state.last_time = event.time.isoformat() if event.time else None
    return findings, state
