"""Alerts as they are recorded on the bus (message id, producer, created set), for export tests.

`recorded_alerts()` varies the examples in examples/alerts: every header field
that export maps (TLP, handling codes with H3 conditions, evaluation, EMPACT,
release list, countries, expiry) and the identifiers that end up in ids and
patterns (container numbers with real check digits, subject references), and
drops optional body fields, so every mapping branch is reached.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from stdnum import iso6346

from bus.core.codelists import HandlingCode, InformationAssessment, SourceReliability, Tlp
from bus.core.models import BaseAlert, parse_alert
from tests.helpers import CODES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alerts"


def example_bodies() -> list[dict[str, Any]]:
    """Every example alert (the three files and each line of batch.jsonl), as JSON."""
    bodies = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    bodies += [json.loads(line) for line in (EXAMPLES / "batch.jsonl").read_text().splitlines() if line.strip()]
    return bodies


def uuid7(value: int) -> str:
    """A valid UUIDv7 from any 122-bit number (version and variant bits set)."""
    raw = value & ((1 << 128) - 1)
    raw = (raw & ~(0xF << 76)) | (0x7 << 76)
    raw = (raw & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=raw))


def recorded(data: dict[str, Any], *, index: int = 0, producer: str = "NL-CUSTOMS",
             created: str = "2026-11-20T10:00:00.123Z") -> BaseAlert:
    """An example as read from the bus: fixed message id, producer and creation time."""
    data = json.loads(json.dumps(data))
    data["header"].update(message_id=uuid7(0x0193_5F1E_7A3B_7000_8000_0000_0000_0000 + index),
                          producer=producer, created=created)
    return parse_alert(data, empact_codes=CODES)


container_numbers = st.builds(
    lambda owner, cat, serial: (number := f"{owner}{cat}{serial:06d}") + iso6346.calc_check_digit(number),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    st.sampled_from("UJZ"),
    st.integers(0, 999_999),
)
member_ids = st.sampled_from(["NL-CUSTOMS", "BE-FEDPOL", "EUROPOL", "PORT-ANTWERP-BRUGES", "ES-CUSTOMS", "DE-BKA"])
subjects = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=20).map(lambda s: f"PSN-{s}")
free_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
                    min_size=1, max_size=80).filter(lambda s: s.strip() != "")
created_times = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))

OPTIONAL_BODY = {
    "suspicious-container": ["bill_of_lading", "vessel_imo", "vessel_name", "voyage", "port_of_loading",
                             "port_of_discharge", "transshipment_ports", "shipper", "consignee", "declared_goods",
                             "hs_code", "seal_numbers", "risk_indicators", "risk_score", "scan_reference", "eta",
                             "terminal"],
    "corruption-indicator": ["confidence", "linked_containers"],
    "operation-notice": ["codename", "participating_agencies", "ports", "containers", "vessels", "window_end",
                         "status", "contact"],
}


@st.composite
def recorded_alerts(draw: st.DrawFn) -> BaseAlert:
    data = json.loads(json.dumps(draw(st.sampled_from(example_bodies()))))
    header = data["header"]
    kind = header["alert_type"]
    created = draw(created_times)
    codes = sorted(draw(st.sets(st.sampled_from(list(HandlingCode)))))
    header.update(
        message_id=uuid7(draw(st.integers(0, (1 << 128) - 1))),
        producer=draw(member_ids),
        created=created.isoformat(),
        tlp=draw(st.sampled_from(list(Tlp))).value,
        handling_codes=[c.value for c in codes],
        source_reliability=draw(st.sampled_from(list(SourceReliability))).value,
        information_assessment=draw(st.sampled_from(list(InformationAssessment))).value,
        release_to=sorted(draw(st.sets(member_ids, max_size=3))),
        summary=draw(free_text),
    )
    header.pop("h3_conditions", None)
    if HandlingCode.H3 in codes:
        header["h3_conditions"] = draw(free_text)
    if draw(st.booleans()):
        header["expires"] = (created + timedelta(days=draw(st.integers(1, 60)))).isoformat()
    if draw(st.booleans()):
        header.pop("empact_priority", None)
    if draw(st.booleans()):
        header.pop("countries", None)
    for field in OPTIONAL_BODY[kind]:
        if field in data and draw(st.booleans()):
            del data[field]
    if kind == "suspicious-container":
        data["container_number"] = draw(container_numbers)
    elif kind == "corruption-indicator":
        data["subject_reference"] = draw(subjects)
        if "linked_containers" in data:
            data["linked_containers"] = sorted(draw(st.sets(container_numbers, max_size=3)))
    else:
        if "containers" in data:
            data["containers"] = sorted(draw(st.sets(container_numbers, max_size=3)))
        data["window_start"] = (created + timedelta(days=1)).isoformat()
        data.pop("window_end", None)
    return parse_alert(data, empact_codes=CODES)
