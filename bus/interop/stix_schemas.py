"""JSON Schemas of our STIX extensions, generated from the alert models and `bus.interop.stix`.

stix2-validator looks a schema up by file name (`<extension-definition id>.json`
or `<object type>.json`) in the folder given as `schema_dir`, and resolves
`$ref`s relative to the schema's own file, so the folder validates offline.
The committed copy under `schemas/stix/` is checked against a fresh
generation by the tests; regenerate with `bus stix schemas --out schemas/stix`.

The alert schema is pydantic's schema of the models, tightened with the
identifier patterns that the models check in code (member ids, ISO 6346,
UN/LOCODE, ...). Check digits and code lists (EMPACT, country registry) stay
code-only: a schema cannot carry them, and `parse_alert` re-checks them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from bus.core.models import ALERT_MODELS, MEMBER_ID_PATTERN, AlertType, OperationKind, OperationStatus
from bus.interop.stix import (
    ALERT_EXTENSION_ID,
    CONTAINER_EXTENSION_ID,
    CONTAINER_TYPE,
    HANDLING_EXTENSION_ID,
    OPERATION_EXTENSION_ID,
    OPERATION_TYPE,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ALERT_SCHEMA_FILE = "epa-alert.json"

#: Identifier formats the models check in code, as schema patterns.
PATTERNS: dict[str, tuple[str, str]] = {
    "MessageId": ("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                  "Message id of the signed alert: a UUIDv7, lower case."),
    "Uuid": ("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", "A UUID, lower case."),
    "MemberId": (MEMBER_ID_PATTERN, "A federation member id, e.g. NL-CUSTOMS (an organisation)."),
    "CountryCode": ("^[A-Z]{2}$", "ISO 3166-1 alpha-2 country code."),
    "UnLocode": ("^[A-Z]{2}[A-Z2-9]{3}$", "UN/LOCODE of a port, e.g. NLRTM."),
    "ContainerNumber": ("^[A-Z]{3}[UJZR][0-9]{7}$", "ISO 6346 container number (check digit checked in code)."),
    "ImoNumber": ("^[0-9]{7}$", "IMO ship number, 7 digits (check digit checked in code)."),
    "HsCode": ("^[0-9]{6,10}$", "HS/CN/TARIC commodity code."),
    "SubjectReference": ("^PSN-[A-Z0-9]{8,64}$", "Pseudonymised subject reference; never a name."),
    "OperationId": ("^[A-Z0-9][A-Z0-9-]{2,63}$", "Operation id, e.g. ES-2026-CD-0117."),
    "Timestamp": ("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$",
                  "UTC date and time, RFC 3339 with 'Z'."),
}

#: (model, field) -> pattern definition applied to the field (or to its items).
FIELD_FORMATS: dict[tuple[str, str], str] = {
    ("AlertHeader", "message_id"): "MessageId",
    ("AlertHeader", "producer"): "MemberId",
    ("AlertHeader", "created"): "Timestamp",
    ("AlertHeader", "expires"): "Timestamp",
    ("AlertHeader", "release_to"): "MemberId",
    ("AlertHeader", "countries"): "CountryCode",
    ("AlertHeader", "ports"): "UnLocode",
    ("AlertHeader", "related"): "Uuid",
    ("SuspiciousContainerAlert", "container_number"): "ContainerNumber",
    ("SuspiciousContainerAlert", "vessel_imo"): "ImoNumber",
    ("SuspiciousContainerAlert", "port_of_loading"): "UnLocode",
    ("SuspiciousContainerAlert", "port_of_discharge"): "UnLocode",
    ("SuspiciousContainerAlert", "transshipment_ports"): "UnLocode",
    ("SuspiciousContainerAlert", "hs_code"): "HsCode",
    ("SuspiciousContainerAlert", "eta"): "Timestamp",
    ("CorruptionIndicatorAlert", "port"): "UnLocode",
    ("CorruptionIndicatorAlert", "subject_reference"): "SubjectReference",
    ("CorruptionIndicatorAlert", "observed_at"): "Timestamp",
    ("CorruptionIndicatorAlert", "linked_containers"): "ContainerNumber",
    ("OperationNoticeAlert", "operation_id"): "OperationId",
    ("OperationNoticeAlert", "lead_agency"): "MemberId",
    ("OperationNoticeAlert", "participating_agencies"): "MemberId",
    ("OperationNoticeAlert", "ports"): "UnLocode",
    ("OperationNoticeAlert", "containers"): "ContainerNumber",
    ("OperationNoticeAlert", "vessels"): "ImoNumber",
    ("OperationNoticeAlert", "window_start"): "Timestamp",
    ("OperationNoticeAlert", "window_end"): "Timestamp",
}


def _defs_ref(name: str, file: str = "") -> dict[str, str]:
    return {"$ref": f"{file}#/$defs/{name}"}


def _constrain(prop: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    """Point a field (or its list items, or the non-null branch of an optional) at a pattern."""
    if prop.get("type") == "array":
        return {**prop, "items": ref}
    if "anyOf" in prop:
        return {**prop, "anyOf": [b if b.get("type") == "null" else ref for b in prop["anyOf"]]}
    kept = {k: v for k, v in prop.items() if k in ("title", "description", "maxLength", "minLength")}
    return {**kept, **ref}


def alert_schema() -> dict[str, Any]:
    """Any one alert as JSON (`BaseAlert.model_dump(mode="json")`), the shape `parse_alert` reads."""
    models = [ALERT_MODELS[t] for t in AlertType]
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top["$defs"]
    for (model_name, field), pattern in FIELD_FORMATS.items():
        props = defs[model_name]["properties"]
        props[field] = _constrain(props[field], _defs_ref(pattern))
    for name, (pattern, description) in PATTERNS.items():
        defs[name] = {"type": "string", "pattern": pattern, "description": description}
    for model in models:  # the header's alert_type must match the body's shape
        header = {"properties": {"alert_type": {"const": model.ALERT_TYPE.value}}}
        defs[model.__name__]["properties"]["header"] = {"allOf": [_defs_ref("AlertHeader"), header]}
    return {
        "$schema": DRAFT,
        "title": "EPA bus alert",
        "description": "One alert of the European Ports Alliance bus, as JSON (header and body).",
        "oneOf": [_defs_ref(m.__name__) for m in models],
        "$defs": dict(sorted(defs.items())),
    }


def _with_extension(ext_id: str, extension: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A schema for a whole STIX object that carries `ext_id` (that is how the validator applies it)."""
    return {
        "type": "object",
        "required": ["extensions", *top.pop("required", [])],
        "properties": {
            "extensions": {"type": "object", "required": [ext_id], "properties": {ext_id: extension}},
            **top.pop("properties", {}),
        },
        **top,
    }


def alert_extension_schema() -> dict[str, Any]:
    alert = ALERT_SCHEMA_FILE
    extension = {
        "type": "object",
        "additionalProperties": False,
        "required": ["extension_type", "message_id", "producer", "alert_type"],
        "properties": {
            "extension_type": {"const": "property-extension"},
            "message_id": _defs_ref("MessageId", alert),
            "producer": _defs_ref("MemberId", alert),
            "alert_type": _defs_ref("AlertType", alert),
            "subject_reference": _defs_ref("SubjectReference", alert),
            "alert": {"$ref": alert},
        },
    }
    return {
        "$schema": DRAFT,
        "title": "EPA bus alert (STIX property extension)",
        "description": "Message id, producing member and alert type on every object exported from an "
        "alert; the whole alert on its main object (grouping or report).",
        **_with_extension(ALERT_EXTENSION_ID, extension),
    }


def handling_extension_schema() -> dict[str, Any]:
    extension = {
        "type": "object",
        "additionalProperties": False,
        "required": ["extension_type", "handling_code"],
        "properties": {
            "extension_type": {"const": "property-extension"},
            "handling_code": _defs_ref("HandlingCode", ALERT_SCHEMA_FILE),
            "conditions": {"type": "string", "minLength": 1},
        },
        "if": {"properties": {"handling_code": {"const": "H3"}}},
        "then": {"required": ["conditions"]},
        "else": {"not": {"required": ["conditions"]}},
    }
    return {
        "$schema": DRAFT,
        "title": "EPA handling code (STIX marking-definition extension)",
        "description": "A Europol handling code on a statement marking definition; H3 states its conditions.",
        **_with_extension(HANDLING_EXTENSION_ID, extension,
                          properties={"type": {"const": "marking-definition"}}),
    }


def container_extension_schema() -> dict[str, Any]:
    extension = {
        "type": "object",
        "additionalProperties": False,
        "required": ["extension_type"],
        "properties": {"extension_type": {"const": "new-sco"}},
    }
    return {
        "$schema": DRAFT,
        "title": f"EPA shipping container (STIX SCO '{CONTAINER_TYPE}')",
        "description": "An ISO 6346 shipping container.",
        **_with_extension(CONTAINER_EXTENSION_ID, extension, required=["type", "id", "number"], properties={
            "type": {"const": CONTAINER_TYPE},
            "id": {"type": "string", "pattern": f"^{CONTAINER_TYPE}--"},
            "number": _defs_ref("ContainerNumber", ALERT_SCHEMA_FILE),
        }),
    }


def operation_extension_schema() -> dict[str, Any]:
    alert = ALERT_SCHEMA_FILE
    extension = {
        "type": "object",
        "additionalProperties": False,
        "required": ["extension_type"],
        "properties": {"extension_type": {"const": "new-sdo"}},
    }

    def listed(name: str) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "items": _defs_ref(name, alert)}

    return {
        "$schema": DRAFT,
        "title": f"EPA operation (STIX SDO '{OPERATION_TYPE}')",
        "description": "A law-enforcement operation announced by an operation notice.",
        **_with_extension(
            OPERATION_EXTENSION_ID, extension,
            required=["type", "id", "name", "operation_id", "kind", "status", "lead_agency", "window_start"],
            properties={
                "type": {"const": OPERATION_TYPE},
                "id": {"type": "string", "pattern": f"^{OPERATION_TYPE}--"},
                "name": {"type": "string", "minLength": 1},
                "operation_id": _defs_ref("OperationId", alert),
                "codename": {"type": "string", "minLength": 1},
                "kind": {"enum": [k.value for k in OperationKind]},
                "status": {"enum": [s.value for s in OperationStatus]},
                "lead_agency": _defs_ref("MemberId", alert),
                "participating_agencies": listed("MemberId"),
                "window_start": _defs_ref("Timestamp", alert),
                "window_end": _defs_ref("Timestamp", alert),
                "ports": listed("UnLocode"),
                "vessels": listed("ImoNumber"),
                "container_refs": {"type": "array", "minItems": 1,
                                   "items": {"type": "string", "pattern": f"^{CONTAINER_TYPE}--"}},
            }),
    }


def build() -> dict[str, dict[str, Any]]:
    """File name -> schema, for the folder `schemas/stix/`."""
    return {
        ALERT_SCHEMA_FILE: alert_schema(),
        f"{ALERT_EXTENSION_ID}.json": alert_extension_schema(),
        f"{HANDLING_EXTENSION_ID}.json": handling_extension_schema(),
        f"{CONTAINER_EXTENSION_ID}.json": container_extension_schema(),
        f"{OPERATION_EXTENSION_ID}.json": operation_extension_schema(),
    }


def render() -> dict[str, str]:
    """File name -> file text (stable formatting, so the committed copy can be compared)."""
    return {name: json.dumps(schema, indent=2, ensure_ascii=False) + "\n" for name, schema in build().items()}
