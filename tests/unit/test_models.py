"""Alert models, code lists, Avro schemas and example files (no broker).

Every validation rule has a failing case that checks both the field path and
the wording of the rule, because those two strings are what a member's analyst
sees when `bus publish` refuses a file.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import load_schema, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from stdnum import iso6346

from bus.core.codelists import (
    EMPACT_CODES,
    CodeListError,
    HandlingCode,
    InformationAssessment,
    SourceReliability,
    Tlp,
    parse_empact,
)
from bus.core.models import (
    ALERT_MODELS,
    MAX_ALERT_JSON_BYTES,
    MAX_LIST_ITEMS,
    MAX_SUMMARY_CHARS,
    AlertHeader,
    AlertType,
    BaseAlert,
    CorruptionIndicatorAlert,
    CorruptionIndicatorType,
    OperationKind,
    OperationNoticeAlert,
    OperationStatus,
    OrganisationType,
    RiskIndicator,
    SuspiciousContainerAlert,
    parse_alert,
)
from bus.errors import AlertValidationError
from tests.helpers import CODES

REPO = Path(__file__).resolve().parents[2]
AVRO_DIR = REPO / "schemas" / "avro"
EXAMPLES = REPO / "examples" / "alerts"
MEMBER = "NL-CUSTOMS"


def _example_items() -> list[tuple[str, dict[str, Any]]]:
    items = []
    for path in sorted(EXAMPLES.iterdir()):
        if path.suffix == ".json":
            items.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
        elif path.suffix == ".jsonl":
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    items.append((f"{path.name}:{number}", json.loads(line)))
    return items


EXAMPLE_ITEMS = _example_items()


def _example(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


def _schema(alert_type: AlertType) -> Any:
    return load_schema(str(AVRO_DIR / f"{alert_type.value}.avsc"))


def _avro_round_trip(alert: BaseAlert) -> dict[str, Any]:
    schema = _schema(alert.alert_type)
    buf = io.BytesIO()
    # strict, like bus.core.codec: a field the schema lacks must not be dropped silently
    schemaless_writer(buf, schema, alert.to_avro(), strict_allow_default=True)
    buf.seek(0)
    return schemaless_reader(buf, schema)


def _errors(data: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    kwargs.setdefault("producer", MEMBER)
    kwargs.setdefault("empact_codes", CODES)
    with pytest.raises(AlertValidationError) as info:
        parse_alert(data, **kwargs)
    return info.value.errors


def _assert_error(errors: list[tuple[str, str]], path: str, fragment: str) -> None:
    assert any(p == path and fragment in m for p, m in errors), (path, fragment, errors)


# -- examples and Avro ---------------------------------------------------------------------------


def test_there_is_an_example_of_every_type() -> None:
    types = {data["header"]["alert_type"] for _, data in EXAMPLE_ITEMS}
    assert types == {t.value for t in AlertType}
    assert sum(name.startswith("batch.jsonl") for name, _ in EXAMPLE_ITEMS) >= 3


@pytest.mark.parametrize(("name", "data"), EXAMPLE_ITEMS, ids=[n for n, _ in EXAMPLE_ITEMS])
def test_example_round_trips_through_avro(name: str, data: dict[str, Any]) -> None:
    alert = parse_alert(data, empact_codes=CODES, producer=MEMBER)
    record = _avro_round_trip(alert)
    back = type(alert).from_avro(record, empact_codes=CODES)
    assert back == alert
    assert back.partition_key() == alert.partition_key()


@pytest.mark.parametrize(("name", "data"), EXAMPLE_ITEMS, ids=[n for n, _ in EXAMPLE_ITEMS])
def test_example_round_trips_through_json(name: str, data: dict[str, Any]) -> None:
    alert = parse_alert(data, empact_codes=CODES, producer=MEMBER)
    dumped = alert.model_dump(mode="json")
    assert set(data) <= set(dumped)
    assert set(data["header"]) <= set(dumped["header"])
    assert parse_alert(json.loads(json.dumps(dumped)), empact_codes=CODES) == alert


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_alert_schema_is_self_contained_and_canonicalisable(alert_type: AlertType) -> None:
    schema = _schema(alert_type)
    model = ALERT_MODELS[alert_type]
    assert schema["name"] == model.AVRO_NAME
    assert schema["fields"][0]["name"] == "header"
    assert schema["fields"][0]["type"]["name"] == "eu.epa.bus.AlertHeader"
    canonical = to_parsing_canonical_form(schema)
    parse_schema(json.loads(canonical))  # the canonical form is a complete schema on its own


def _enum_symbols(avro_type: Any) -> list[str] | None:
    if isinstance(avro_type, list):
        found = [s for t in avro_type if (s := _enum_symbols(t))]
        return found[0] if found else None
    if isinstance(avro_type, dict):
        if avro_type["type"] == "enum":
            return list(avro_type["symbols"])
        if avro_type["type"] == "array":
            return _enum_symbols(avro_type["items"])
    return None


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_model_fields_and_enums_match_the_schema(alert_type: AlertType) -> None:
    """A field or enum value added on one side only would break encoding at publish time."""
    schema = _schema(alert_type)
    model = ALERT_MODELS[alert_type]
    fields = {f["name"]: f for f in schema["fields"]}
    header = {f["name"]: f for f in fields["header"]["type"]["fields"]}
    assert list(fields) == list(model.model_fields)
    assert list(header) == list(AlertHeader.model_fields)
    enums = {**model._HEADER_AVRO_ENUMS, **model._AVRO_ENUMS}
    for name, enum in enums.items():
        avro_field = header.get(name) or fields[name]
        assert _enum_symbols(avro_field["type"]) == [m.name for m in enum], name


@pytest.mark.parametrize(
    "enum",
    [
        AlertType, RiskIndicator, OrganisationType, CorruptionIndicatorType,
        OperationKind, OperationStatus,
    ],
)
def test_body_enum_names_map_to_values(enum: type[Enum]) -> None:
    for member in enum:
        assert member.name == member.value.upper().replace("-", "_")


def test_amber_strict_maps_to_avro_symbol() -> None:
    alert = parse_alert(_example("operation-notice.json"), empact_codes=CODES, producer=MEMBER)
    assert alert.header.tlp is Tlp.AMBER_STRICT
    assert alert.to_avro()["header"]["tlp"] == "AMBER_STRICT"
    assert alert.model_dump(mode="json")["header"]["tlp"] == "AMBER+STRICT"


def test_from_avro_rejects_unknown_symbol() -> None:
    alert = parse_alert(_example("suspicious-container.json"), empact_codes=CODES, producer=MEMBER)
    record = alert.to_avro()
    record["header"]["tlp"] = "PURPLE"
    with pytest.raises(AlertValidationError, match="not a suspicious-container Avro record"):
        SuspiciousContainerAlert.from_avro(record, empact_codes=CODES)


def test_from_avro_rejects_wrong_alert_type() -> None:
    alert = parse_alert(_example("suspicious-container.json"), empact_codes=CODES, producer=MEMBER)
    record = alert.to_avro()
    record["header"]["alert_type"] = "OPERATION_NOTICE"
    with pytest.raises(AlertValidationError) as info:
        SuspiciousContainerAlert.from_avro(record, empact_codes=CODES)
    _assert_error(info.value.errors, "header", "this is a suspicious-container alert")


# -- defaults, normalisation, contract -----------------------------------------------------------


def test_defaults_are_filled() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    alert = parse_alert(_example("suspicious-container.json"), empact_codes=CODES, producer=MEMBER)
    header = alert.header
    assert type(header.message_id) is uuid.UUID and header.message_id.version == 7
    assert header.producer == MEMBER
    assert header.created.tzinfo is UTC and header.created >= before
    assert header.created.microsecond % 1000 == 0
    assert alert.alert_type is AlertType.SUSPICIOUS_CONTAINER


def test_alert_type_comes_from_argument_when_header_lacks_it() -> None:
    data = _example("operation-notice.json")
    del data["header"]["alert_type"]
    alert = parse_alert(data, empact_codes=CODES, alert_type="operation-notice", producer=MEMBER)
    assert alert.alert_type is AlertType.OPERATION_NOTICE
    assert alert.partition_key() == "ES-2026-CD-0117"


def test_identifiers_are_normalised() -> None:
    data = _example("suspicious-container.json")
    data["container_number"] = "csqu 305438 3"
    data["vessel_imo"] = "IMO 9074729"
    data["port_of_loading"] = "ec gye"
    data["hs_code"] = "0803.90.10"
    data["header"]["countries"] = ["ec", "nl"]
    data["header"]["created"] = "2026-11-20T10:15:30.123456+01:00"
    alert = parse_alert(data, empact_codes=CODES, producer=MEMBER)
    assert alert.container_number == "CSQU3054383"
    assert alert.vessel_imo == "9074729"
    assert alert.port_of_loading == "ECGYE"
    assert alert.hs_code == "08039010"
    assert alert.header.countries == ["EC", "NL"]
    assert alert.header.created == datetime(2026, 11, 20, 9, 15, 30, 123000, tzinfo=UTC)


def test_imo_number_may_be_a_json_number() -> None:
    data = _example("operation-notice.json")
    data["vessels"] = [9074729]
    assert parse_alert(data, empact_codes=CODES, producer=MEMBER).vessels == ["9074729"]


def test_models_are_frozen() -> None:
    alert = parse_alert(_example("suspicious-container.json"), empact_codes=CODES, producer=MEMBER)
    with pytest.raises(ValidationError):
        alert.container_number = "MSCU7482106"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        alert.header.tlp = Tlp.CLEAR  # type: ignore[misc]


def test_direct_construction_fills_alert_type_and_checks_it() -> None:
    header = {
        "producer": MEMBER, "tlp": "GREEN", "source_reliability": "A",
        "information_assessment": "1", "summary": "Joint action day at Hamburg.",
    }
    notice = OperationNoticeAlert(
        header=header, operation_id="DE-2026-JAD-07", lead_agency="DE-CUSTOMS",
        kind="joint-action-day", window_start=datetime(2026, 12, 1, 6, tzinfo=UTC),
    )
    assert notice.header.alert_type is AlertType.OPERATION_NOTICE
    assert notice.status is OperationStatus.PLANNED
    with pytest.raises(ValidationError, match="this is a corruption-indicator alert"):
        CorruptionIndicatorAlert.model_validate(
            {"header": notice.header, "port": "DEHAM", "organisation_type": "customs",
             "subject_reference": "PSN-ABCDEFGH", "indicator_type": "data-leak",
             "observed_at": "2026-11-01T00:00:00Z", "description": "x"}
        )


def test_alert_models_cover_every_type() -> None:
    assert set(ALERT_MODELS) == set(AlertType)
    for alert_type, model in ALERT_MODELS.items():
        assert model.ALERT_TYPE is alert_type


# -- validation rules: one failing case each -----------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[leaf] = value

    return mutate


RULES: list[tuple[str, str, Mutation, str, str]] = [
    # (id, example file, mutation, expected path, expected fragment of the message)
    ("container-check-digit", "suspicious-container.json", _set("container_number", "CSQU3054384"),
     "container_number", "'CSQU3054384' fails the ISO 6346 check digit (expected 3)"),
    ("container-format", "suspicious-container.json", _set("container_number", "CSQ3054383"),
     "container_number", "not an ISO 6346 container number"),
    ("linked-container-check-digit", "corruption-indicator.json",
     _set("linked_containers", ["MSCU7482106", "TGHU5129031"]),
     "linked_containers[1]", "fails the ISO 6346 check digit (expected 0)"),
    ("imo-check-digit", "suspicious-container.json", _set("vessel_imo", "IMO 9074728"),
     "vessel_imo", "fails the IMO check digit (expected 9)"),
    ("imo-format", "operation-notice.json", _set("vessels", ["94823"]),
     "vessels[0]", "not an IMO ship number"),
    ("country", "suspicious-container.json", _set("header.countries", ["NL", "XX"]),
     "header.countries[1]", "'XX' is not an ISO 3166-1 alpha-2 country code"),
    ("locode-country", "suspicious-container.json", _set("port_of_loading", "XXGYE"),
     "port_of_loading", "'XX' is not an ISO 3166-1 country code"),
    ("locode-format", "operation-notice.json", _set("ports", ["ESALG", "DEHA1"]),
     "ports[1]", "is not a UN/LOCODE"),
    ("h3-without-conditions", "suspicious-container.json", _set("header.handling_codes", ["H3"]),
     "header.h3_conditions", "required when handling code H3 is present"),
    ("conditions-without-h3", "suspicious-container.json", _set("header.h3_conditions", "x"),
     "header.h3_conditions", "only allowed with handling code H3"),
    ("duplicate-handling-code", "suspicious-container.json",
     _set("header.handling_codes", ["H1", "H1"]), "header.handling_codes", "duplicate entry 'H1'"),
    ("naive-created", "suspicious-container.json", _set("header.created", "2026-11-20T10:00:00"),
     "header.created", "datetime has no timezone"),
    ("naive-eta", "suspicious-container.json", _set("eta", "2026-12-04T06:00:00"),
     "eta", "datetime has no timezone"),
    ("datetime-out-of-range", "operation-notice.json", _set("window_end", "9999-12-31T23:59:59-01:00"),
     "window_end", "out of range once converted to UTC"),
    ("bad-datetime", "corruption-indicator.json", _set("observed_at", "yesterday"),
     "observed_at", "not an ISO 8601 datetime"),
    ("expires-before-created", "suspicious-container.json",
     lambda d: d["header"].update(created="2026-11-20T10:00:00Z", expires="2026-11-20T09:00:00Z"),
     "header.expires", "must be after created"),
    ("window-end-before-start", "operation-notice.json", _set("window_end", "2026-11-30T00:00:00Z"),
     "window_end", "must be after window_start"),
    ("empact-code", "suspicious-container.json",
     _set("header.empact_priority", {"cycle": "2026-2029", "code": "COKE"}),
     "header.empact_priority.code", "unknown EMPACT priority code 'COKE' for cycle 2026-2029; "
     "valid codes: HRCN"),
    ("empact-cycle", "suspicious-container.json",
     _set("header.empact_priority", {"cycle": "2018-2021", "code": "CCH"}),
     "header.empact_priority.cycle", "valid cycles: 2022-2025, 2026-2029"),
    ("unknown-body-field", "suspicious-container.json", _set("container_numbr", "CSQU3054383"),
     "container_numbr", "unknown field"),
    ("unknown-header-field", "suspicious-container.json", _set("header.tlp_label", "AMBER"),
     "header.tlp_label", "unknown field"),
    ("missing-field", "corruption-indicator.json", lambda d: d.pop("port"),
     "port", "required field is missing"),
    ("bad-tlp", "suspicious-container.json", _set("header.tlp", "AMBER_STRICT"),
     "header.tlp", "'AMBER+STRICT'"),
    ("oversized-summary", "suspicious-container.json",
     _set("header.summary", "x" * (MAX_SUMMARY_CHARS + 1)),
     "header.summary", "at most 500 characters"),
    ("oversized-description", "corruption-indicator.json", _set("description", "x" * 4001),
     "description", "at most 4000 characters"),
    ("oversized-list", "suspicious-container.json",
     _set("seal_numbers", [f"S{i:06d}" for i in range(MAX_LIST_ITEMS + 1)]),
     "seal_numbers", "at most 100"),
    ("blank-summary", "suspicious-container.json", _set("header.summary", "   "),
     "header.summary", "must not be blank"),
    ("control-characters", "suspicious-container.json", _set("vessel_name", "ATLANTIC\x1bMERIDIAN"),
     "vessel_name", "control characters"),
    ("non-v7-message-id", "suspicious-container.json",
     _set("header.message_id", "0f1e2d3c-4b5a-4968-8776-655443322110"),
     "header.message_id", "must be a UUIDv7"),
    ("bad-member-id", "suspicious-container.json", _set("header.release_to", ["nl-police"]),
     "header.release_to[0]", "is not a member id"),
    ("hs-code", "suspicious-container.json", _set("hs_code", "0803"),
     "hs_code", "6 to 10 digits"),
    ("risk-score", "suspicious-container.json", _set("risk_score", 1.5),
     "risk_score", "less than or equal to 1"),
    ("risk-indicator", "suspicious-container.json", _set("risk_indicators", ["smells-funny"]),
     "risk_indicators[0]", "'rip-on-rip-off'"),
    ("subject-without-prefix", "corruption-indicator.json",
     _set("subject_reference", "EMPLOYEE-4471"), "subject_reference", "^PSN-[A-Z0-9]{8,64}$"),
    ("operation-id", "operation-notice.json", _set("operation_id", "es 2026 cd"),
     "operation_id", "is not an operation id"),
]


@pytest.mark.parametrize(
    ("example", "mutate", "path", "fragment"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_rule_is_enforced(example: str, mutate: Mutation, path: str, fragment: str) -> None:
    data = _example(example)
    mutate(data)
    _assert_error(_errors(data), path, fragment)


def test_person_name_as_subject_is_rejected_without_echoing_it() -> None:
    data = _example("corruption-indicator.json")
    data["subject_reference"] = "Jan Janssens"
    with pytest.raises(AlertValidationError) as info:
        parse_alert(data, empact_codes=CODES, producer=MEMBER)
    _assert_error(info.value.errors, "subject_reference", "never a person's name")
    assert "Janssens" not in str(info.value)


def test_producer_must_match_member() -> None:
    data = _example("suspicious-container.json")
    data["header"]["producer"] = "BE-CUSTOMS"
    errors = _errors(data, producer="NL-CUSTOMS")
    _assert_error(errors, "header.producer", "'BE-CUSTOMS' does not match the publishing member 'NL-CUSTOMS'")
    # the same producer in both places is fine
    assert parse_alert(data, empact_codes=CODES, producer="BE-CUSTOMS").header.producer == "BE-CUSTOMS"


def test_producer_is_required_somewhere() -> None:
    errors = _errors(_example("suspicious-container.json"), producer=None)
    _assert_error(errors, "header.producer", "required field is missing")


def test_unknown_alert_type_names_the_valid_ones() -> None:
    data = _example("suspicious-container.json")
    data["header"]["alert_type"] = "suspicious-vessel"
    valid = "valid types: suspicious-container, corruption-indicator, operation-notice"
    _assert_error(_errors(data), "header.alert_type", valid)
    del data["header"]["alert_type"]
    _assert_error(_errors(data, alert_type="vessel"), "alert_type", valid)
    _assert_error(_errors(data), "header.alert_type", "required field is missing: one of")


def test_alert_type_argument_must_agree_with_header() -> None:
    errors = _errors(_example("suspicious-container.json"), alert_type=AlertType.OPERATION_NOTICE)
    _assert_error(errors, "header.alert_type", "does not match the alert type being published, 'operation-notice'")


def test_whole_alert_size_is_limited() -> None:
    data = _example("suspicious-container.json")
    data["padding"] = "x" * MAX_ALERT_JSON_BYTES
    _assert_error(_errors(data), "alert", f"at most {MAX_ALERT_JSON_BYTES} allowed")


def test_header_must_be_an_object() -> None:
    errors = _errors({"container_number": "CSQU3054383"})
    _assert_error(errors, "header", "required field is missing")
    _assert_error(_errors({"header": []}), "header", "expected a JSON object")


def test_all_problems_are_reported_at_once() -> None:
    data = _example("suspicious-container.json")
    data["container_number"] = "CSQU3054384"
    data["vessel_imo"] = "9074728"
    data["header"]["producer"] = "BE-CUSTOMS"
    paths = {p for p, _ in _errors(data)}
    assert {"container_number", "vessel_imo", "header.producer"} <= paths


@settings(max_examples=50, deadline=None)
@given(
    owner=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    serial=st.integers(min_value=0, max_value=999_999),
    wrong=st.integers(min_value=1, max_value=9),
)
def test_container_check_digit_property(owner: str, serial: int, wrong: int) -> None:
    body = f"{owner}U{serial:06d}"
    good = body + iso6346.calc_check_digit(body)
    data = _example("suspicious-container.json")
    data["container_number"] = good
    assert parse_alert(data, empact_codes=CODES, producer=MEMBER).partition_key() == good
    bad = body + str((int(good[-1]) + wrong) % 10)
    data["container_number"] = bad
    _assert_error(_errors(data), "container_number", f"(expected {good[-1]})")



@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet="ABCJRUZabu0123456789 -.", max_size=14))
def test_container_number_outcome_follows_the_rule(value: str) -> None:
    """Any input: the compacted number when its shape and check digit hold; otherwise the shape
    is explained before the check digit (the validator compacts once on the valid path)."""
    import re

    from pydantic_core import PydanticCustomError

    from bus.core.models import _container_number

    number = iso6346.compact(value)
    shaped = len(number) == 11 and re.fullmatch(r"[A-Z]{3}[UJZR]\d{7}", number) is not None
    try:
        result = _container_number(value)
    except PydanticCustomError as exc:
        message = str(exc)
        if not shaped:
            assert "expected 3-letter owner code" in message
        else:
            assert message == (f"{number!r} fails the ISO 6346 check digit "
                               f"(expected {iso6346.calc_check_digit(number[:10])})")
    else:
        assert shaped and iso6346.is_valid(value) and result == number


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(alphabet="IMO 0123456789a-", max_size=14), st.integers(-10, 10**8)))
def test_imo_number_outcome_follows_the_rule(value: str | int) -> None:
    from pydantic_core import PydanticCustomError
    from stdnum import imo

    from bus.core.models import _imo_number

    number = imo.compact(str(value))
    shaped = len(number) == 7 and number.isascii() and number.isdigit()
    try:
        result = _imo_number(value)
    except PydanticCustomError as exc:
        message = str(exc)
        if not shaped:
            assert "is not an IMO ship number: 7 digits" in message
        else:
            assert message == f"'IMO {number}' fails the IMO check digit (expected {imo.calc_check_digit(number[:6])})"
    else:
        assert shaped and imo.is_valid(str(value)) and result == number


def _outcome(check: Callable[[Any], str], value: Any) -> tuple[str, str]:
    from pydantic_core import PydanticCustomError

    try:
        return "ok", check(value)
    except PydanticCustomError as exc:
        return exc.type, str(exc)


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(
    st.builds(lambda owner, category, digits: owner + category + digits,
              st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
              st.sampled_from("UJZRX"), st.text(alphabet="0123456789", min_size=6, max_size=8)),
    st.text(alphabet="ABCJRUZabu0123456789 -.\u0660", max_size=14),
))
def test_container_fast_path_agrees_with_stdnum(value: str) -> None:
    """The compact-form shortcut accepts and refuses exactly what the stdnum path does, with
    the same message (its own check digit arithmetic is checked against stdnum's here)."""
    from bus.core.models import _checked_container_number, _container_number

    assert _outcome(_container_number, value) == _outcome(_checked_container_number, value)


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(st.text(alphabet="0123456789", min_size=6, max_size=8),
                       st.text(alphabet="IMO 0123456789a-\u0663", max_size=10), st.integers(-10, 10**8)))
def test_imo_fast_path_agrees_with_stdnum(value: str | int) -> None:
    from bus.core.models import _checked_imo_number, _imo_number

    assert _outcome(_imo_number, value) == _outcome(_checked_imo_number, value)


@given(value=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1),
                          timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])))
def test_utc_millis_shortcut_gives_the_converted_truncated_time(value: datetime) -> None:
    from bus.core.models import _utc_millis

    expected = value.astimezone(UTC)
    expected = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    result = _utc_millis(value)
    assert result == expected and result.tzinfo is UTC and result.microsecond % 1000 == 0


@given(value=st.text(alphabet=st.sampled_from(" \t\n\x0b\x1c\x85\xa0\u2028\u3000a\x00"), max_size=6))
def test_blank_text_is_exactly_what_strip_empties(value: str) -> None:
    from pydantic_core import PydanticCustomError

    from bus.core.models import _text

    try:
        _text(multiline=True)(value)
    except PydanticCustomError as exc:
        assert (exc.type == "blank") == (not value.strip())
    else:
        assert value.strip()


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(alphabet="NLBEGRTM-x ", max_size=10), st.sampled_from(["NLRTM", "NL", "NL-CUSTOMS"]),
                       st.just("N" + " " * 70 + "L")))
def test_remembered_checks_give_the_outcome_of_the_plain_ones_every_time(value: str) -> None:
    from bus.core.models import _country, _locode, _member_id, _remembered

    for check, longest in ((_member_id, 64), (_country, 8), (_locode, 12)):
        remembered = _remembered(check, longest)
        assert _outcome(remembered, value) == _outcome(check, value)
        assert _outcome(remembered, value) == _outcome(check, value)  # a second time: from the cache


# -- code lists ---------------------------------------------------------------------------------


def test_empact_code_list_is_versioned() -> None:
    codes = CODES
    assert list(codes.cycles) == ["2022-2025", "2026-2029"]
    for cycle in ("2022-2025", "2026-2029"):
        for code in ("CCH", "SYN-NPS", "HRCN"):
            assert codes.lookup(cycle, code).code == code
    assert codes.lookup("2022-2025", "MTIC").priority.startswith("Fraud")
    assert "FIREX" in codes.cycles["2026-2029"].priorities
    assert "FIREX" not in codes.cycles["2022-2025"].priorities
    cycle = codes.cycle_for(date(2027, 3, 1))
    assert cycle is not None and cycle.name == "2026-2029"
    assert codes.cycle_for(date(2031, 1, 1)) is None


def test_broken_code_list_fails_loudly() -> None:
    with pytest.raises(CodeListError, match=r"EMPACT code list my\.yaml is malformed"):
        parse_empact("cycles:\n  '2026-2029':\n    valid_from: '2026-01-01'\n", source="my.yaml")
    with pytest.raises(CodeListError, match="not valid YAML"):
        parse_empact("cycles: [\n")


OLD_CYCLE_ONLY = """
cycles:
  '2022-2025':
    valid_from: '2022-01-01'
    valid_to: '2025-12-31'
    priorities:
      - {code: CCH, title: Cocaine, cannabis and heroin}
"""


def test_empact_priority_is_checked_against_the_code_list_it_is_given() -> None:
    data = _example("suspicious-container.json")  # EMPACT 2026-2029 / CCH
    errors = _errors(data, empact_codes=parse_empact(OLD_CYCLE_ONLY))
    _assert_error(errors, "header.empact_priority.cycle", "unknown EMPACT cycle '2026-2029'; valid cycles: 2022-2025")
    data["header"]["empact_priority"] = {"cycle": "2022-2025", "code": "CCH"}
    assert parse_alert(data, empact_codes=parse_empact(OLD_CYCLE_ONLY), producer=MEMBER).header.empact_priority


def test_empact_priority_without_a_code_list_is_refused_not_skipped() -> None:
    header = {
        "alert_type": "operation-notice", "producer": MEMBER, "tlp": "GREEN", "source_reliability": "A",
        "information_assessment": "1", "summary": "Joint action day at Hamburg.",
        "empact_priority": {"cycle": "2026-2029", "code": "CCH"},
    }
    with pytest.raises(ValidationError, match="without the EMPACT code list"):
        AlertHeader.model_validate(header)
    assert AlertHeader.model_validate(header, context={EMPACT_CODES: CODES}).empact_priority is not None


def _avro_enums(node: object) -> dict[str, list[str]]:
    """Every named enum of a parsed Avro schema: name -> symbols."""
    found: dict[str, list[str]] = {}
    if isinstance(node, dict):
        if node.get("type") == "enum":
            found[node["name"]] = node["symbols"]
        for value in node.values():
            found |= _avro_enums(value)
    elif isinstance(node, list):
        for value in node:
            found |= _avro_enums(value)
    return found


@pytest.mark.parametrize("code_list", [AlertType, Tlp, HandlingCode, SourceReliability, InformationAssessment])
def test_code_lists_are_the_wire_schema_enums_in_order(code_list: type[Enum]) -> None:
    """A code the models accept must encode, and the order is the Avro symbol order (a reader
    compiled from the schema sees the same list)."""
    schema = json.loads((REPO / "schemas" / "avro" / "eu.epa.bus.AlertHeader.avsc").read_text())
    assert [member.name for member in code_list] == _avro_enums(schema)[code_list.__name__]


def test_tlp_ranks_order_the_labels_from_least_to_most_restricted() -> None:
    assert Tlp.CLEAR.rank < Tlp.GREEN.rank < Tlp.AMBER.rank < Tlp.AMBER_STRICT.rank < Tlp.RED.rank
    assert Tlp.AMBER_STRICT.value == "AMBER+STRICT"  # the TLP 2.0 label, not the Avro symbol
    assert all(t.description for t in Tlp) and all(h.description for h in HandlingCode)
