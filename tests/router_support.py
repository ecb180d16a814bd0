"""What the router's tests share: a test policy, sealed records as the port carries them, audit reading."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from bus.adapters.kafka import Headers, Record, wire_headers
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal
from bus.core.keys import SigningKey
from tests.helpers import SCHEMAS

NEUTRAL = {
    "tlp": "AMBER", "handling_codes": [], "source_reliability": "C", "information_assessment": "3",
    "empact_priority": None, "countries": [], "ports": [], "release_to": [], "h3_conditions": None,
}
"""Header fields that match no rule of `policy_doc` by themselves."""


def policy_doc(feed_prefix: str = "feed.") -> dict[str, Any]:
    """Partners with their own feeds under `feed_prefix`; one rule per routing fact."""

    def partner(pid: str, kind: str) -> dict[str, str]:
        return {"id": pid, "kind": kind, "feed": f"{feed_prefix}{pid.lower()}"}

    return {
        "version": "router-test",
        "partners": [
            partner("EUROPOL", "eu-agency"), partner("NL-CUSTOMS", "customs"), partner("BE-CUSTOMS", "customs"),
            partner("DE-CUSTOMS", "customs"), partner("ES-CUSTOMS", "customs"), partner("NL-POLICE", "police"),
            partner("BE-FEDPOL", "police"), partner("EMPACT-CCH", "empact"), partner("PORT-HAMBURG", "port-authority"),
        ],
        "rules": [
            {"id": "r-type", "match": {"alert_types": ["operation-notice"]}, "deliver_to": ["NL-CUSTOMS"]},
            {"id": "r-tlp", "match": {"tlp": ["GREEN"]}, "deliver_to": ["NL-POLICE"]},
            {"id": "r-handling", "match": {"handling_codes_any": ["H1"]}, "deliver_to": ["BE-CUSTOMS"]},
            {"id": "r-empact", "match": {"empact": [{"cycle": "2026-2029", "code": "CCH"}]},
             "deliver_to": ["EMPACT-CCH"]},
            {"id": "r-country", "match": {"countries_any": ["ES"]}, "deliver_to": ["ES-CUSTOMS"]},
            {"id": "r-port", "match": {"ports_any": ["DEHAM"]}, "deliver_to": ["DE-CUSTOMS"]},
            {"id": "r-producer", "match": {"producers": ["PORT-ROTTERDAM"]}, "deliver_to": ["PORT-HAMBURG"]},
            {"id": "r-reliability", "match": {"min_source_reliability": "B", "min_information_assessment": "2"},
             "deliver_to": ["BE-FEDPOL"]},
        ],
    }


def wire(record: SealedRecord) -> tuple[str, bytes, bytes, Headers]:
    """(topic, key, value, headers as bytes): how a producer hands a sealed record to the port."""
    return record.topic, record.key, record.value, wire_headers(record.headers)


def sealed(alert: BaseAlert, signer: SigningKey) -> SealedRecord:
    return seal(alert, signer, SCHEMAS)


def ce_id(record: Record) -> str | None:
    found = record.header_values(b"ce_id")
    return found[0].decode() if len(found) == 1 and found[0] is not None else None


def header(record: Record, name: bytes) -> str | None:
    found = record.header_values(name)
    return found[-1].decode() if found and found[-1] is not None else None


def delivered_counts(records: Iterable[Record]) -> Counter[str]:
    return Counter(i for r in records if (i := ce_id(r)) is not None)


def audit_entries(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [json.loads(r.value or b"") for r in records]


def decisions(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [e for e in audit_entries(records) if e.get("kind") == "decision"]
