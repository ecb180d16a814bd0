"""Alerts as STIX 2.1 objects (pure: no I/O, no clock).

`alert_objects(alert)` is the unit a TAXII server serves: one alert's objects
plus the marking and extension definitions they reference. `export_bundle`
puts any number of alerts in one bundle. docs/interop.md has the mapping
tables; the choices that matter to a consumer:

- Ids are UUIDv5 under `NAMESPACE`, named by the alert's message id (markings
  and extension definitions by their content), and `created`/`modified` are
  the alert's `created`: exporting the same alert twice gives the same bytes,
  and a platform that imports both copies merges them. STIX recommends UUIDv4
  for SDOs; stix2-validator reports that SHOULD as a warning, which we accept.
- No `identity` and no `threat-actor` objects, for any alert type: a
  corruption indicator must carry no personal data and no attribution, and one
  rule for all types cannot be got wrong. Who produced the alert is the member
  id in the EPA extension (`producer`); members are organisations, not
  persons, but the signed federation directory, not a STIX identity we would
  mint, is the authority on who they are.
- Every object carries the message id (extension and, for SDOs, an
  `external_references` entry with source `epa-bus`), so an analyst can go
  back to the signed record. The main object of each alert (the grouping or
  report) carries the whole alert JSON, so nothing the producer said is lost.
- TLP 2.0 uses the official OASIS marking definitions; Europol handling codes
  are statement markings with a machine-readable extension; both are applied
  to every object of the alert, SCOs included.
- Containers are SCOs of our own type `epa-shipping-container` (STIX has no
  shipping container). Their ids are per alert, not derived from the number,
  because each copy carries its alert's markings; platforms match containers
  on the `number`, which is also what the indicator's pattern tests.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stix2 import v21
from stix2.properties import ListProperty, ReferenceProperty, StringProperty, TimestampProperty

from bus.core.codelists import HANDLING_CODE_DESCRIPTIONS, HandlingCode, Tlp
from bus.core.models import (
    AlertHeader,
    BaseAlert,
    CorruptionIndicatorAlert,
    OperationNoticeAlert,
    SuspiciousContainerAlert,
)
from bus.errors import InvalidInput

__all__ = [
    "ALERT_EXTENSION_ID",
    "CONTAINER_EXTENSION_ID",
    "CONTAINER_TYPE",
    "DEFINITIONS_CREATED",
    "EPA_BUS_IDENTITY_ID",
    "EXTENSION_IDS",
    "HANDLING_EXTENSION_ID",
    "NAMESPACE",
    "OPERATION_EXTENSION_ID",
    "OPERATION_TYPE",
    "TLP_EXTENSION_ID",
    "TLP_MARKING_IDS",
    "AlertObjects",
    "EpaOperation",
    "ShippingContainer",
    "alert_objects",
    "bundle_id",
    "export_bundle",
    "extension_definitions",
    "handling_marking",
    "shared_objects",
    "tlp_marking",
]

#: Namespace of every UUIDv5 this module mints. Never change it: ids would change with it.
NAMESPACE = uuid.UUID("81b80a9c-8ce6-4654-90b4-263a8d556316")

#: `created` (and `modified`) of the definitions we publish; bump with their `version`.
DEFINITIONS_CREATED = datetime(2026, 11, 30, tzinfo=UTC)
EXTENSION_VERSION = "1.0.0"

ALERT_EXTENSION_ID = "extension-definition--8c1ab08e-e5fc-48d1-865a-3b920c8822de"
HANDLING_EXTENSION_ID = "extension-definition--b233c134-5d61-4075-a9c6-878fec10c887"
CONTAINER_EXTENSION_ID = "extension-definition--e47720ae-a6b3-4a99-914f-d57d839d0627"
OPERATION_EXTENSION_ID = "extension-definition--7f87f2f7-149f-453b-b059-5444f74dd28d"
EXTENSION_IDS = (ALERT_EXTENSION_ID, HANDLING_EXTENSION_ID, CONTAINER_EXTENSION_ID, OPERATION_EXTENSION_ID)

CONTAINER_TYPE = "epa-shipping-container"
OPERATION_TYPE = "epa-operation"

#: OASIS TLP 2.0 extension (cti-stix-common-objects, extension-definition-specifications/tlp-2.0).
TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKING_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
#: All five official objects were created on this date.
_TLP_CREATED = "2022-10-01T00:00:00.000Z"

_SOURCE_NAME = "epa-bus"


# -- our own object types -----------------------------------------------------------------------


ShippingContainer: Any = v21.CustomObservable(
    CONTAINER_TYPE,
    [("number", StringProperty(required=True))],
    None,  # no id-contributing properties: ids are per alert (see the module docstring)
    CONTAINER_EXTENSION_ID,
)(type("ShippingContainer", (), {"__doc__": "An ISO 6346 shipping container, by its container number."}))

EpaOperation: Any = v21.CustomObject(
    OPERATION_TYPE,
    [
        ("name", StringProperty(required=True)),
        ("operation_id", StringProperty(required=True)),
        ("codename", StringProperty()),
        ("kind", StringProperty(required=True)),
        ("status", StringProperty(required=True)),
        ("lead_agency", StringProperty(required=True)),
        ("participating_agencies", ListProperty(StringProperty)),
        ("window_start", TimestampProperty(required=True, precision="millisecond")),
        ("window_end", TimestampProperty(precision="millisecond")),
        ("ports", ListProperty(StringProperty)),
        ("vessels", ListProperty(StringProperty)),
        ("container_refs", ListProperty(ReferenceProperty(valid_types=CONTAINER_TYPE, spec_version="2.1"))),
    ],
    OPERATION_EXTENSION_ID,
)(type("EpaOperation", (), {"__doc__": (
    "A law-enforcement operation (controlled delivery, action day, deconfliction request). "
    "STIX's `campaign` means adversary activity, the opposite of what an operation notice says, "
    "and a report needs at least one object to refer to."
)}))


# -- ids ----------------------------------------------------------------------------------------


def _id(stix_type: str, *name: str) -> str:
    return f"{stix_type}--{uuid.uuid5(NAMESPACE, '/'.join((stix_type, *name)))}"


#: The EPA bus as a STIX identity, the `created_by_ref` that extension definitions
#: require. Deliberately not exported: see the module docstring on identities.
EPA_BUS_IDENTITY_ID = _id("identity", "epa-bus")


def bundle_id(alerts: Iterable[BaseAlert]) -> str:
    """The same set of alerts gives the same bundle id, whatever the order."""
    return _id("bundle", *sorted({str(a.header.message_id) for a in alerts}))


# -- shared definitions ---------------------------------------------------------------------------


# Definitions are built once per process: stix2 objects are immutable, and building them
# again for every alert was a third of the time a TAXII page takes to make.


@functools.cache
def tlp_marking(tlp: Tlp) -> Any:
    """The official OASIS TLP 2.0 marking definition, field for field."""
    return v21.MarkingDefinition(
        id=TLP_MARKING_IDS[tlp],
        created=_TLP_CREATED,
        name=f"TLP:{tlp.value}",
        extensions={TLP_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": tlp.value.lower()}},
    )


@functools.lru_cache(maxsize=256)
def handling_marking(code: HandlingCode, conditions: str | None = None) -> Any:
    """A Europol handling code as a statement marking, readable by any STIX platform.

    H3 says "other restrictions apply", so its marking carries the conditions and
    its id is named by them: alerts with the same conditions share one marking.
    """
    if (code is HandlingCode.H3) != (conditions is not None):
        raise ValueError("H3 needs its conditions, and only H3 has conditions")
    extension: dict[str, Any] = {"extension_type": "property-extension", "handling_code": code.value}
    if conditions is None:
        statement = f"EPA handling code {code.value}: {HANDLING_CODE_DESCRIPTIONS[code]}"
    else:
        statement = f"EPA handling code {code.value}: other restrictions apply: {conditions}"
        extension["conditions"] = conditions
    return v21.MarkingDefinition(
        id=_id("marking-definition", "handling-code", code.value, *([conditions] if conditions else [])),
        created=DEFINITIONS_CREATED,
        name=f"EPA handling code {code.value}",
        definition_type="statement",
        definition=v21.StatementMarking(statement=statement),
        extensions={HANDLING_EXTENSION_ID: extension},
    )


def _extension_definition(ext_id: str, name: str, description: str, extension_type: str) -> Any:
    return v21.ExtensionDefinition(
        id=ext_id,
        created_by_ref=EPA_BUS_IDENTITY_ID,
        created=DEFINITIONS_CREATED,
        modified=DEFINITIONS_CREATED,
        name=name,
        description=description,
        schema=f"JSON Schema 2020-12 shipped with the EPA bus: schemas/stix/{ext_id}.json "
        "(relative references only, validates offline)",
        version=EXTENSION_VERSION,
        extension_types=[extension_type],
    )


@functools.cache
def extension_definitions() -> tuple[Any, ...]:
    """Our four extension definitions, in a fixed order."""
    return (
        _extension_definition(
            ALERT_EXTENSION_ID, "EPA bus alert",
            "Traceability and content of a European Ports Alliance bus alert: message id, producing "
            "member, alert type on every object; the whole alert (header and body) on its main object.",
            "property-extension"),
        _extension_definition(
            HANDLING_EXTENSION_ID, "EPA handling code",
            "A Europol handling code (H0-H3) on a statement marking definition; H3 with its conditions.",
            "property-extension"),
        _extension_definition(
            CONTAINER_EXTENSION_ID, "EPA shipping container",
            f"New SCO '{CONTAINER_TYPE}': an ISO 6346 shipping container, property 'number'.",
            "new-sco"),
        _extension_definition(
            OPERATION_EXTENSION_ID, "EPA operation",
            f"New SDO '{OPERATION_TYPE}': a law-enforcement operation announced by an operation "
            "notice (controlled delivery, joint action day, deconfliction request).",
            "new-sdo"),
    )


def shared_objects() -> tuple[Any, ...]:
    """What a TAXII collection publishes once: extension definitions, all TLP markings, H0-H2.

    H3 markings depend on the alert's conditions, so they come with the alert.
    """
    return (
        *extension_definitions(),
        *(tlp_marking(t) for t in Tlp),
        *(handling_marking(c) for c in HandlingCode if c is not HandlingCode.H3),
    )


# -- one alert ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertObjects:
    """One alert in STIX: its own objects and the definitions they reference.

    `objects` have ids named by the message id; `markings` and `extensions` are
    shared between alerts (same id, same content), so a server may store them once.
    """

    message_id: uuid.UUID
    objects: tuple[Any, ...]
    markings: tuple[Any, ...]
    extensions: tuple[Any, ...]

    @property
    def all(self) -> tuple[Any, ...]:
        """Definitions first, so a reader meets every referenced marking before its use."""
        return (*self.extensions, *self.markings, *self.objects)


class _Context:
    """What every object of one alert shares: markings, extension, provenance."""

    def __init__(self, alert: BaseAlert) -> None:
        header: AlertHeader = alert.header
        self.alert = alert
        self.header = header
        self.msgid = str(header.message_id)
        handling = [
            handling_marking(code, header.h3_conditions if code is HandlingCode.H3 else None)
            for code in sorted(header.handling_codes)
        ]
        self.markings = (tlp_marking(header.tlp), *handling)
        self.marking_refs = [m.id for m in self.markings]
        self.trace: dict[str, Any] = {
            "extension_type": "property-extension",
            "message_id": self.msgid,
            "producer": header.producer,
            "alert_type": alert.alert_type.value,
        }

    def id(self, stix_type: str, *name: str) -> str:
        return _id(stix_type, self.msgid, *name)

    def extensions(self, *, full: bool = False, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {**self.trace, **(extra or {})}
        if full:
            body["alert"] = self.alert.model_dump(mode="json", exclude_none=True)
        return {ALERT_EXTENSION_ID: body}

    def sdo(self, *, full: bool = False, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Common properties of the alert's SDOs and SROs."""
        return {
            "created": self.header.created,
            "modified": self.header.created,
            "object_marking_refs": self.marking_refs,
            "external_references": [v21.ExternalReference(
                source_name=_SOURCE_NAME,
                external_id=self.msgid,
                description=f"EPA bus alert (message id) produced by {self.header.producer}",
            )],
            "extensions": self.extensions(full=full, extra=extra),
        }

    def container(self, number: str) -> Any:
        return ShippingContainer(
            id=self.id(CONTAINER_TYPE, number),
            number=number,
            object_marking_refs=self.marking_refs,
            extensions={CONTAINER_EXTENSION_ID: {"extension_type": "new-sco"}, **self.extensions()},
        )


def _suspicious_container(ctx: _Context, alert: SuspiciousContainerAlert) -> list[Any]:
    number = alert.container_number
    labels = [r.value for r in alert.risk_indicators] or None
    container = ctx.container(number)
    observed = v21.ObservedData(
        id=ctx.id("observed-data"),
        first_observed=ctx.header.created,
        last_observed=ctx.header.created,
        number_observed=1,
        object_refs=[container.id],
        **ctx.sdo(),
    )
    indicator = v21.Indicator(
        id=ctx.id("indicator"),
        name=f"Suspicious container {number}",
        description=ctx.header.summary,
        indicator_types=["anomalous-activity"],
        pattern=f"[{CONTAINER_TYPE}:number = '{number}']",
        pattern_type="stix",
        pattern_version="2.1",
        valid_from=ctx.header.created,
        valid_until=ctx.header.expires,
        labels=labels,
        **ctx.sdo(),
    )
    based_on = v21.Relationship(
        id=ctx.id("relationship", "based-on"),
        relationship_type="based-on",
        source_ref=indicator.id,
        target_ref=observed.id,
        **ctx.sdo(),
    )
    grouping = v21.Grouping(
        id=ctx.id("grouping"),
        name=f"Suspicious container {number}",
        description=ctx.header.summary,
        context="suspicious-activity",
        object_refs=[indicator.id, observed.id, container.id, based_on.id],
        labels=labels,
        **ctx.sdo(full=True),
    )
    return [grouping, indicator, observed, container, based_on]


def _confidence(score: float | None) -> int | None:
    return None if score is None else round(score * 100)


def _corruption_indicator(ctx: _Context, alert: CorruptionIndicatorAlert) -> list[Any]:
    containers = [ctx.container(n) for n in alert.linked_containers]
    subject = {"subject_reference": alert.subject_reference}
    grouping_id, note_id = ctx.id("grouping"), ctx.id("note")
    title = f"Corruption indicator at {alert.port}: {alert.indicator_type.value}"
    note = v21.Note(
        id=note_id,
        abstract=title,
        content=alert.description,
        object_refs=[grouping_id],
        confidence=_confidence(alert.confidence),
        **ctx.sdo(extra=subject),
    )
    grouping = v21.Grouping(
        id=grouping_id,
        name=title,
        description=ctx.header.summary,
        context="suspicious-activity",
        object_refs=[note_id, *(c.id for c in containers)],
        confidence=_confidence(alert.confidence),
        labels=[alert.indicator_type.value, alert.organisation_type.value],
        **ctx.sdo(full=True, extra=subject),
    )
    return [grouping, note, *containers]


def _operation_notice(ctx: _Context, alert: OperationNoticeAlert) -> list[Any]:
    containers = [ctx.container(n) for n in alert.containers]
    sdo = ctx.sdo()
    operation = EpaOperation(
        id=ctx.id(OPERATION_TYPE),
        name=alert.codename or alert.operation_id,
        operation_id=alert.operation_id,
        codename=alert.codename,
        kind=alert.kind.value,
        status=alert.status.value,
        lead_agency=alert.lead_agency,
        participating_agencies=alert.participating_agencies or None,
        window_start=alert.window_start,
        window_end=alert.window_end,
        ports=alert.ports or None,
        vessels=alert.vessels or None,
        container_refs=[c.id for c in containers] or None,
        **{**sdo, "extensions": {OPERATION_EXTENSION_ID: {"extension_type": "new-sdo"}, **sdo["extensions"]}},
    )
    report = v21.Report(
        id=ctx.id("report"),
        name=f"Operation notice {alert.operation_id} ({alert.kind.value}, {alert.status.value})",
        description=ctx.header.summary,
        published=ctx.header.created,
        object_refs=[operation.id, *(c.id for c in containers)],
        labels=[alert.kind.value],
        **ctx.sdo(full=True),
    )
    return [report, operation, *containers]


def alert_objects(alert: BaseAlert) -> AlertObjects:
    """One alert as STIX objects; the first object is its main one (grouping or report)."""
    ctx = _Context(alert)
    if isinstance(alert, SuspiciousContainerAlert):
        objects = _suspicious_container(ctx, alert)
    elif isinstance(alert, CorruptionIndicatorAlert):
        objects = _corruption_indicator(ctx, alert)
    elif isinstance(alert, OperationNoticeAlert):
        objects = _operation_notice(ctx, alert)
    else:  # a new alert type must get a mapping, not a silent gap
        raise TypeError(f"no STIX mapping for {type(alert).__name__}")
    used = {ALERT_EXTENSION_ID, HANDLING_EXTENSION_ID if alert.header.handling_codes else ""}
    used |= {CONTAINER_EXTENSION_ID for o in objects if o.type == CONTAINER_TYPE}
    used |= {OPERATION_EXTENSION_ID for o in objects if o.type == OPERATION_TYPE}
    return AlertObjects(
        message_id=alert.header.message_id,
        objects=tuple(objects),
        markings=ctx.markings,
        extensions=tuple(e for e in extension_definitions() if e.id in used),
    )


# -- bundles --------------------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(json.loads(obj.serialize()), sort_keys=True)


def export_bundle(alerts: Sequence[BaseAlert]) -> Any:
    """A STIX 2.1 bundle of `alerts`, each shared definition once, in a deterministic order.

    The same alert twice (read from two feeds) is exported once; two different
    alerts with one message id are refused, because ids would collide.
    """
    definitions: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    for alert in alerts:
        exported = alert_objects(alert)
        for obj in (*exported.extensions, *exported.markings):
            definitions.setdefault(obj.id, obj)
        for obj in exported.objects:
            if obj.id in objects:
                if _canonical(objects[obj.id]) != _canonical(obj):
                    raise InvalidInput(
                        f"two different alerts carry message id {exported.message_id}; "
                        "their STIX ids would collide", [("header.message_id", "must be unique")])
                continue
            objects[obj.id] = obj
    ordered = sorted(definitions.values(), key=lambda o: (o.type != "extension-definition", o.id))
    return v21.Bundle(*ordered, *objects.values(), id=bundle_id(alerts), allow_custom=False)
