"""Findings on a container event -> one suspicious-container alert (as JSON data)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.edifact.parse import EquipmentEvent
from connectors.edifact.rules import Finding, describe
from connectors.sdk.inbox import FileInfo

MAX_SUMMARY = 500


def alert_data(event: EquipmentEvent, findings: list[Finding], info: FileInfo, header_defaults: dict[str, Any],
               expires_after_days: int | None) -> dict[str, Any]:
    reasons = "; ".join(f.reason for f in findings)
    summary = f"Container {event.container} {describe(event)} ({event.message_type} {event.message_ref}): {reasons}."
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    ports = list(dict.fromkeys(p for p in (event.place, event.port_of_loading, event.port_of_discharge) if p))
    header: dict[str, Any] = {
        **header_defaults,
        "alert_type": "suspicious-container",
        "message_id": str(info.message_id(f"event:{event.key}")),
        "created": info.created.isoformat(),
        "summary": summary,
    }
    if ports and "ports" not in header_defaults:
        header["ports"] = ports
    if expires_after_days:
        header["expires"] = (info.created + timedelta(days=expires_after_days)).isoformat()
    data: dict[str, Any] = {
        "header": header,
        "container_number": event.container,
        "port_of_loading": event.port_of_loading,
        "port_of_discharge": event.port_of_discharge,
        "seal_numbers": list(event.seals),
        "risk_indicators": list(dict.fromkeys(f.indicator.value for f in findings)),
        "terminal": event.terminal,
        "vessel_name": event.vessel_name,
        "vessel_imo": event.vessel_imo,
        "voyage": event.voyage,
        "bill_of_lading": (event.references.get("BM") or (None,))[0],
    }
    return {k: v for k, v in data.items() if v not in (None, [])}
