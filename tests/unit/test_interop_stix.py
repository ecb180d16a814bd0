"""STIX 2.1 export: valid by the OASIS validator (offline), parseable, deterministic, marked right."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import stix2
from hypothesis import HealthCheck, given, settings
from stix2matcher.matcher import match
from stix2validator import ValidationOptions, validate_instance

from bus.cli.stix import SCHEMA_DIR
from bus.core.codelists import HandlingCode, Tlp
from bus.core.models import AlertType, BaseAlert, parse_alert
from bus.errors import InvalidInput
from bus.interop import stix as mapping
from bus.interop.stix_schemas import render
from tests.alert_strategies import example_bodies, recorded, recorded_alerts
from tests.helpers import CODES

ALERT_EXT = mapping.ALERT_EXTENSION_ID
#: The only SHOULD the export knowingly breaks: SDO ids are UUIDv5 (deterministic), not UUIDv4.
ACCEPTED_WARNINGS = ["uuid-check"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stix2-validator fetches any http(s) `$ref` with requests; here that must fail loudly."""
    import stix2validator.validator as validator_module

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(validator_module.requests, "get", refuse)
    yield


def bundle_json(alerts: list[BaseAlert]) -> dict[str, Any]:
    return json.loads(mapping.export_bundle(alerts).serialize())


def validate(bundle: dict[str, Any]) -> Any:
    options = ValidationOptions(schema_dir=str(SCHEMA_DIR), version="2.1", disabled=ACCEPTED_WARNINGS)
    return validate_instance(bundle, options)


def assert_valid(bundle: dict[str, Any]) -> None:
    result = validate(bundle)
    assert result.is_valid, [str(e) for e in result.errors]
    assert not result.warnings, [str(w) for w in result.warnings]


def by_type(bundle: dict[str, Any], stix_type: str) -> list[dict[str, Any]]:
    return [o for o in bundle["objects"] if o["type"] == stix_type]


EXAMPLES = [recorded(body, index=i) for i, body in enumerate(example_bodies())]


# -- validity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alert", EXAMPLES, ids=lambda a: f"{a.alert_type.value}-{str(a.header.message_id)[-4:]}")
def test_every_example_exports_to_a_bundle_the_oasis_validator_accepts(alert: BaseAlert) -> None:
    assert_valid(bundle_json([alert]))


def test_all_examples_in_one_bundle_are_valid() -> None:
    bundle = bundle_json(EXAMPLES)
    assert_valid(bundle)
    assert {t for o in bundle["objects"] for t in [o["type"]]} >= {
        "grouping", "indicator", "observed-data", "note", "report", mapping.CONTAINER_TYPE, mapping.OPERATION_TYPE}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert=recorded_alerts())
def test_generated_alerts_export_to_valid_bundles(alert: BaseAlert) -> None:
    assert_valid(bundle_json([alert]))


def test_validator_applies_our_extension_schemas_from_the_repo() -> None:
    """Proof the schemas are found locally: breaking a rule only they state makes the bundle invalid."""
    bundle = bundle_json([EXAMPLES[0]])  # corruption indicator
    note = by_type(bundle, "note")[0]
    note["extensions"][ALERT_EXT]["subject_reference"] = "Jan Janssen"
    result = validate(bundle)
    assert not result.is_valid
    assert any("subject_reference" in str(e) for e in result.errors)


def test_committed_schemas_are_the_generated_ones() -> None:
    for name, text in render().items():
        path = SCHEMA_DIR / name
        assert path.exists() and path.read_text() == text, f"{path} is stale: run `bus stix schemas`"
    for ext in mapping.EXTENSION_IDS:
        assert (SCHEMA_DIR / f"{ext}.json").exists()


def test_schemas_use_only_relative_references() -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for name, text in render().items():
        for ref in refs(json.loads(text)):
            assert "://" not in ref and not ref.startswith("/"), f"{name}: {ref}"


# -- parsing back ----------------------------------------------------------------------------------


def test_stix2_parses_the_bundle_back_to_the_same_objects() -> None:
    text = mapping.export_bundle(EXAMPLES).serialize()
    parsed = stix2.parse(text, allow_custom=False)
    assert json.loads(parsed.serialize()) == json.loads(text)
    types = {type(o).__name__ for o in parsed.objects}
    assert {"Grouping", "Indicator", "Report", "Note"} <= types


def test_main_object_carries_the_whole_alert() -> None:
    for alert in EXAMPLES:
        main = mapping.alert_objects(alert).objects[0]
        assert parse_alert(main.extensions[ALERT_EXT]["alert"], empact_codes=CODES) == alert


# -- determinism -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(alert=recorded_alerts())
def test_reexport_gives_identical_objects(alert: BaseAlert) -> None:
    again = parse_alert(alert.model_dump(mode="json"), empact_codes=CODES)
    first, second = mapping.alert_objects(alert), mapping.alert_objects(again)
    assert [o.serialize() for o in first.all] == [o.serialize() for o in second.all]


def test_ids_follow_the_message_id_and_timestamps_the_alert() -> None:
    alert = EXAMPLES[2]
    other = recorded(example_bodies()[2], index=99)
    ids = {o.id for o in mapping.alert_objects(alert).objects}
    assert ids.isdisjoint(o.id for o in mapping.alert_objects(other).objects)
    for obj in mapping.alert_objects(alert).objects:
        assert obj.get("created", alert.header.created) == alert.header.created


def test_bundle_is_the_same_whatever_the_order_of_alerts() -> None:
    forward = bundle_json(EXAMPLES)
    backward = bundle_json(list(reversed(EXAMPLES)))
    assert forward["id"] == backward["id"]
    assert sorted(json.dumps(o, sort_keys=True) for o in forward["objects"]) == sorted(
        json.dumps(o, sort_keys=True) for o in backward["objects"])


def test_same_alert_twice_is_exported_once_and_a_clashing_one_is_refused() -> None:
    alert = EXAMPLES[2]
    assert bundle_json([alert, alert]) == bundle_json([alert])
    clash = alert.model_copy(update={"header": alert.header.model_copy(update={"summary": "something else"})})
    with pytest.raises(InvalidInput, match=str(alert.header.message_id)):
        mapping.export_bundle([alert, clash])


# -- content ---------------------------------------------------------------------------------------


def test_indicator_pattern_matches_the_container_and_nothing_else() -> None:
    alert = next(a for a in EXAMPLES if a.alert_type is AlertType.SUSPICIOUS_CONTAINER)
    bundle = bundle_json([alert])
    (indicator,) = by_type(bundle, "indicator")
    assert alert.container_number in indicator["pattern"]
    assert match(indicator["pattern"], [bundle], stix_version="2.1")
    for container in by_type(bundle, mapping.CONTAINER_TYPE):
        container["number"] = "MSCU7482106"
    assert not match(indicator["pattern"], [bundle], stix_version="2.1")


OFFICIAL_TLP = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}


@pytest.mark.parametrize("tlp", list(Tlp), ids=str)
def test_tlp_markings_are_the_official_oasis_objects(tlp: Tlp) -> None:
    marking = json.loads(mapping.tlp_marking(tlp).serialize())
    assert marking == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": OFFICIAL_TLP[tlp.value],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{tlp.value}",
        "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
            "extension_type": "property-extension", "tlp_2_0": tlp.value.lower()}},
    }


@settings(max_examples=40, deadline=None)
@given(alert=recorded_alerts())
def test_every_object_carries_the_alert_markings_and_message_id(alert: BaseAlert) -> None:
    exported = mapping.alert_objects(alert)
    markings = {m.id: m for m in exported.markings}
    assert OFFICIAL_TLP[alert.header.tlp.value] in markings
    handling = {m.extensions[mapping.HANDLING_EXTENSION_ID]["handling_code"]: m
                for m in exported.markings if m.id not in OFFICIAL_TLP.values()}
    assert set(handling) == {c.value for c in alert.header.handling_codes}
    if HandlingCode.H3 in alert.header.handling_codes:
        h3 = handling["H3"]
        assert h3.extensions[mapping.HANDLING_EXTENSION_ID]["conditions"] == alert.header.h3_conditions
        assert alert.header.h3_conditions in h3.definition.statement
    for obj in exported.objects:
        assert set(obj.object_marking_refs) == set(markings), obj.id
        trace = obj.extensions[ALERT_EXT]
        assert (trace["message_id"], trace["producer"]) == (str(alert.header.message_id), alert.header.producer)


@settings(max_examples=40, deadline=None)
@given(alert=recorded_alerts())
def test_no_identity_or_threat_actor_objects(alert: BaseAlert) -> None:
    bundle = bundle_json([alert])
    assert not [o for o in bundle["objects"] if o["type"] in ("identity", "threat-actor", "intrusion-set")]
    assert not [o for o in bundle["objects"] if "created_by_ref" in o and o["type"] != "extension-definition"]


def test_corruption_subject_is_pseudonymised_in_the_extension_and_nowhere_else() -> None:
    alert = next(a for a in EXAMPLES if a.alert_type is AlertType.CORRUPTION_INDICATOR)
    bundle = bundle_json([alert])
    (grouping,), (note,) = by_type(bundle, "grouping"), by_type(bundle, "note")
    assert note["extensions"][ALERT_EXT]["subject_reference"] == alert.subject_reference
    assert grouping["extensions"][ALERT_EXT]["subject_reference"] == alert.subject_reference
    for obj in bundle["objects"]:
        visible = {k: v for k, v in obj.items() if k != "extensions"}
        assert alert.subject_reference not in json.dumps(visible)


def test_shared_objects_are_what_alerts_reference() -> None:
    shared = {o.id: o.serialize() for o in mapping.shared_objects()}
    for alert in EXAMPLES:
        exported = mapping.alert_objects(alert)
        for obj in (*exported.extensions, *exported.markings):
            if obj.id in shared:
                assert shared[obj.id] == obj.serialize()
            else:  # only H3 markings depend on the alert
                assert obj.extensions[mapping.HANDLING_EXTENSION_ID]["handling_code"] == "H3"
