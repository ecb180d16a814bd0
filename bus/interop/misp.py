"""Alerts as MISP events (pure: no I/O, no clock).

One alert is one MISP event whose uuid is the alert's message id, so the event
leads back to the signed record and re-exporting replaces rather than
duplicates it. Attribute uuids are UUIDv5 under `bus.interop.stix.NAMESPACE`,
and every timestamp is the alert's `created`.

Tags: the TLP 2.0 taxonomy (`tlp:clear` .. `tlp:red`); galaxies where MISP has
one that fits: the `country` galaxy for the alert's countries and the `sector`
galaxy for the organisation type of a corruption indicator. Everything else
the bus knows (handling codes, the 4x4 evaluation, EMPACT priority, release
list, risk indicators) is an `epa-bus:` machine tag. The Europol 4x4 evaluation
is deliberately not mapped onto MISP's admiralty-scale taxonomy: the scales
differ (A/B/C/X and 1-4 against A-F and 1-6), and a made-up equivalence would
misstate how reliable the information is.

The country galaxy's cluster names are data (`pymispgalaxies`), read by the
adapter and passed in as `countries` (ISO 3166 alpha-2 -> cluster value).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from pymisp import MISPEvent, MISPObject, MISPOrganisation

from bus.core.codelists import HandlingCode, Tlp
from bus.core.models import (
    BaseAlert,
    CorruptionIndicatorAlert,
    OperationNoticeAlert,
    OperationStatus,
    OrganisationType,
    SuspiciousContainerAlert,
)
from bus.interop.stix import NAMESPACE

__all__ = [
    "SECTOR_GALAXY",
    "TAG_NAMESPACE",
    "distribution",
    "misp_event",
    "organisation_uuid",
    "tlp_tag",
]

TAG_NAMESPACE = "epa-bus"

#: MISP distribution levels.
YOUR_ORGANISATION_ONLY, THIS_COMMUNITY_ONLY, ALL_COMMUNITIES = 0, 1, 3
#: MISP threat level "undefined": the bus has no threat level, and a guessed one would mislead.
THREAT_LEVEL_UNDEFINED = 4
ANALYSIS_INITIAL, ANALYSIS_ONGOING, ANALYSIS_COMPLETED = 0, 1, 2

#: Organisation type of a corruption indicator -> value in MISP's `sector` galaxy.
SECTOR_GALAXY: Mapping[OrganisationType, str] = {
    OrganisationType.TERMINAL_OPERATOR: "Maritime",
    OrganisationType.SHIPPING_LINE: "Maritime",
    OrganisationType.PORT_AUTHORITY: "Maritime",
    OrganisationType.CUSTOMS: "Government, Administration",
    OrganisationType.LOGISTICS: "Logistic",
}


def tlp_tag(tlp: Tlp) -> str:
    """The tag of MISP's TLP taxonomy (which has the TLP 2.0 values)."""
    return f"tlp:{tlp.value.lower()}"


def distribution(alert: BaseAlert) -> int:
    """How far a MISP instance may pass the event on, never further than the alert allows.

    H2 (no dissemination without permission) and H3 (conditions a machine cannot
    read) keep it in the receiving organisation, as do AMBER, AMBER+STRICT and RED.
    """
    header = alert.header
    if {HandlingCode.H2, HandlingCode.H3} & set(header.handling_codes) or header.tlp.rank >= Tlp.AMBER.rank:
        return YOUR_ORGANISATION_ONLY
    return THIS_COMMUNITY_ONLY if header.tlp is Tlp.GREEN else ALL_COMMUNITIES


def organisation_uuid(member: str) -> uuid.UUID:
    """A member organisation's uuid in MISP (`Orgc`): the same on every instance."""
    return uuid.uuid5(NAMESPACE, f"misp-organisation/{member}")


def _tag(name: str, value: str) -> str:
    return f'{TAG_NAMESPACE}:{name}="{value}"'


class _Builder:
    def __init__(self, alert: BaseAlert) -> None:
        self.alert = alert
        self.header = alert.header
        self.created: datetime = alert.header.created
        self.msgid = str(alert.header.message_id)
        self.event = MISPEvent()
        self._seen: set[tuple[str, str, str]] = set()

    def uuid(self, *name: str) -> str:
        return str(uuid.uuid5(NAMESPACE, "/".join(("misp", self.msgid, *name))))

    def attribute(self, key: str, type_: str, value: str, comment: str, *, category: str = "Other",
                  to_ids: bool = False, correlate: bool = True) -> None:
        """Add an attribute once: MISP refuses a second one with the same type, category and value."""
        if (type_, category, value) in self._seen:
            return
        self._seen.add((type_, category, value))
        self.event.add_attribute(
            type_, value, category=category, comment=comment, to_ids=to_ids,
            disable_correlation=not correlate, uuid=self.uuid("attribute", key, value),
            timestamp=self.created,
        )

    def when(self, key: str, value: datetime | None, comment: str) -> None:
        if value is not None:
            self.attribute(key, "datetime", value.isoformat().replace("+00:00", "Z"), comment, correlate=False)

    def vessel(self, imo: str | None, name: str | None) -> None:
        """MISP's `ftm-Vessel` object (FollowTheMoney): name and IMO number."""
        if imo is None and name is None:
            return
        obj = MISPObject("ftm-Vessel", standalone=False)
        obj.uuid = self.uuid("object", "vessel", imo or "", name or "")
        obj.timestamp = self.created
        obj.add_attribute("name", value=name or f"IMO {imo}", uuid=self.uuid("vessel-name", imo or "", name or ""),
                          timestamp=self.created)
        if imo is not None:
            obj.add_attribute("imoNumber", value=imo, uuid=self.uuid("vessel-imo", imo), timestamp=self.created)
        self.event.add_object(obj)

    def header_fields(self) -> None:
        h = self.header
        event = self.event
        event.uuid = self.msgid
        event.date = self.created.date()
        event.timestamp = self.created
        event.publish_timestamp = self.created
        event.published = True
        event.threat_level_id = THREAT_LEVEL_UNDEFINED
        event.analysis = ANALYSIS_INITIAL
        event.distribution = distribution(self.alert)
        org = MISPOrganisation()
        org.from_dict(name=h.producer, uuid=str(organisation_uuid(h.producer)))
        event.Orgc = org
        event.add_tag(tlp_tag(h.tlp))
        event.add_tag(_tag("alert-type", self.alert.alert_type.value))
        event.add_tag(_tag("source-reliability", h.source_reliability.value))
        event.add_tag(_tag("information-assessment", h.information_assessment.value))
        for code in h.handling_codes:
            event.add_tag(_tag("handling-code", code.value))
        if h.empact_priority is not None:
            event.add_tag(_tag("empact-priority", f"{h.empact_priority.cycle}/{h.empact_priority.code}"))
        for member in h.release_to:
            event.add_tag(_tag("release-to", member))
        self.attribute("message-id", "text", self.msgid,
                       f"EPA bus message id of the signed alert, produced by {h.producer}",
                       category="Internal reference", correlate=False)
        if h.h3_conditions is not None:
            self.attribute("h3-conditions", "comment", h.h3_conditions, "Handling code H3: conditions of use",
                           correlate=False)
        for related in h.related:
            self.attribute("related", "text", str(related), "related EPA bus alert (message id)",
                           category="Internal reference")
        self.when("expires", h.expires, "alert expires")

    def header_ports(self) -> None:
        """After the body's ports, which say more (loading, discharge, ...) about the same codes."""
        for port in self.header.ports:
            self.attribute("port", "text", port, "port concerned (UN/LOCODE)")

    def countries(self, countries: Mapping[str, str]) -> None:
        for code in self.header.countries:
            if code in countries:
                self.event.add_tag(f'misp-galaxy:country="{countries[code]}"')


def _suspicious_container(b: _Builder, alert: SuspiciousContainerAlert) -> str:
    b.attribute("container", "text", alert.container_number, "ISO 6346 container number of the suspicious container",
                to_ids=True)
    texts = [
        ("bill-of-lading", alert.bill_of_lading, "bill of lading"),
        ("voyage", alert.voyage, "voyage"),
        ("port-of-loading", alert.port_of_loading, "port of loading (UN/LOCODE)"),
        ("port-of-discharge", alert.port_of_discharge, "port of discharge (UN/LOCODE)"),
        ("shipper", alert.shipper, "shipper (company)"),
        ("consignee", alert.consignee, "consignee (company)"),
        ("declared-goods", alert.declared_goods, "declared goods"),
        ("hs-code", alert.hs_code, "HS/CN commodity code"),
        ("scan-reference", alert.scan_reference, "scan reference"),
        ("terminal", alert.terminal, "terminal"),
    ]
    for key, value, comment in texts:
        if value is not None:
            b.attribute(key, "text", value, comment)
    for port in alert.transshipment_ports:
        b.attribute("transshipment-port", "text", port, "transshipment port (UN/LOCODE)")
    for seal in alert.seal_numbers:
        b.attribute("seal", "text", seal, "seal number")
    if alert.risk_score is not None:
        b.attribute("risk-score", "float", str(alert.risk_score), "risk score (0-1) given by the producer",
                    correlate=False)
    b.when("eta", alert.eta, "estimated time of arrival")
    b.vessel(alert.vessel_imo, alert.vessel_name)
    for indicator in alert.risk_indicators:
        b.event.add_tag(_tag("risk-indicator", indicator.value))
    return f"Suspicious container {alert.container_number}"


def _corruption_indicator(b: _Builder, alert: CorruptionIndicatorAlert) -> str:
    b.attribute("subject", "text", alert.subject_reference,
                "pseudonymised subject reference (never a name); correlates reports on one subject",
                category="Person")
    b.attribute("port", "text", alert.port, "port (UN/LOCODE)")
    b.attribute("description", "comment", alert.description, "what was observed", correlate=False)
    b.when("observed-at", alert.observed_at, "observed at")
    if alert.confidence is not None:
        b.attribute("confidence", "float", str(alert.confidence), "confidence (0-1) of the producer",
                    correlate=False)
    for number in alert.linked_containers:
        b.attribute("linked-container", "text", number, "linked container (ISO 6346)")
    b.event.add_tag(_tag("corruption-indicator-type", alert.indicator_type.value))
    b.event.add_tag(_tag("organisation-type", alert.organisation_type.value))
    sector = SECTOR_GALAXY.get(alert.organisation_type)
    if sector is not None:
        b.event.add_tag(f'misp-galaxy:sector="{sector}"')
    return f"Corruption indicator at {alert.port} ({alert.indicator_type.value})"


def _operation_notice(b: _Builder, alert: OperationNoticeAlert) -> str:
    b.attribute("operation-id", "text", alert.operation_id, "operation id", category="Internal reference")
    if alert.codename is not None:
        b.attribute("codename", "text", alert.codename, "operation codename", category="Internal reference")
    b.attribute("lead-agency", "text", alert.lead_agency, "lead agency (member id)")
    for agency in alert.participating_agencies:
        b.attribute("participating-agency", "text", agency, "participating agency (member id)")
    for port in alert.ports:
        b.attribute("operation-port", "text", port, "port of the operation (UN/LOCODE)")
    # not for IDS: these containers must be left alone, not flagged
    for number in alert.containers:
        b.attribute("container", "text", number, "container under the operation (ISO 6346); do not intervene")
    for imo in alert.vessels:
        b.vessel(imo, None)
    b.when("window-start", alert.window_start, "operation window starts")
    b.when("window-end", alert.window_end, "operation window ends")
    if alert.contact is not None:
        b.attribute("contact", "text", alert.contact, "deconfliction contact", correlate=False)
    b.event.add_tag(_tag("operation-kind", alert.kind.value))
    b.event.add_tag(_tag("operation-status", alert.status.value))
    b.event.analysis = {
        OperationStatus.PLANNED: ANALYSIS_INITIAL,
        OperationStatus.ACTIVE: ANALYSIS_ONGOING,
        OperationStatus.CONCLUDED: ANALYSIS_COMPLETED,
        OperationStatus.CANCELLED: ANALYSIS_COMPLETED,
    }[alert.status]
    return f"Operation notice {alert.operation_id} ({alert.kind.value}, {alert.status.value})"


def misp_event(alert: BaseAlert, *, countries: Mapping[str, str] | None = None) -> MISPEvent:
    """One alert as a published MISP event; `countries` maps ISO alpha-2 to country-galaxy values."""
    b = _Builder(alert)
    b.header_fields()
    b.countries(countries or {})
    if isinstance(alert, SuspiciousContainerAlert):
        title = _suspicious_container(b, alert)
    elif isinstance(alert, CorruptionIndicatorAlert):
        title = _corruption_indicator(b, alert)
    elif isinstance(alert, OperationNoticeAlert):
        title = _operation_notice(b, alert)
    else:  # a new alert type must get a mapping, not a silent gap
        raise TypeError(f"no MISP mapping for {type(alert).__name__}")
    b.header_ports()
    b.event.info = f"{title}: {alert.header.summary}"
    return b.event
