"""Routing policy: every match dimension, the restrictions, policy files, the CLI, and a
property test against a naive reference implementation of the documented semantics."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.adapters.policy_file import (
    PolicyFileError,
    load_cases,
    load_policy,
    policy_digest,
    policy_from_text,
)
from bus.cli import app
from bus.core.codelists import EMPACT_CODES
from bus.core.models import AlertHeader, parse_alert
from bus.core.policy import (
    Decision,
    DecisionCode,
    Match,
    Policy,
    check_case,
    evaluate,
    parse_policy,
)
from bus.errors import PolicyValidationError
from tests.helpers import CODES

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "policies" / "default.yaml"
DEFAULT_CASES = REPO / "policies" / "default.cases.yaml"
EXAMPLES = REPO / "examples" / "alerts"

PARTNERS = [
    {"id": "EUROPOL", "kind": "eu-agency"},
    {"id": "EMPACT-CCH", "kind": "empact"},
    {"id": "NL-CUSTOMS", "kind": "customs"},
    {"id": "BE-CUSTOMS", "kind": "customs"},
    {"id": "NL-POLICE", "kind": "police"},
    {"id": "PORT-ROTTERDAM", "kind": "port-authority"},
]
ALL = [p["id"] for p in PARTNERS]


def policy(*rules: dict[str, Any], partners: list[dict[str, Any]] | None = None) -> Policy:
    return parse_policy({"version": "t1", "partners": partners or PARTNERS, "rules": list(rules)})


def rule(rid: str = "r", deliver_to: list[str] | None = None, **match: Any) -> dict[str, Any]:
    return {"id": rid, "match": match, "deliver_to": deliver_to or ["EUROPOL"]}


def header(**overrides: Any) -> AlertHeader:
    data: dict[str, Any] = {
        "alert_type": "suspicious-container",
        "producer": "ES-CUSTOMS",
        "tlp": "AMBER",
        "source_reliability": "B",
        "information_assessment": "2",
        "summary": "test alert",
    }
    data.update(overrides)
    return AlertHeader.model_validate(data, context={EMPACT_CODES: CODES})


def delivered(p: Policy, **overrides: Any) -> list[str]:
    return evaluate(p, header(**overrides)).recipients


# -- the model ------------------------------------------------------------------------------


def test_partner_feed_defaults_to_lowercased_id_and_must_stay_under_feed_prefix() -> None:
    p = policy(partners=[{"id": "PORT-ANTWERP-BRUGES", "kind": "port-authority"}])
    assert p.feed_topic("PORT-ANTWERP-BRUGES") == "feed.port-antwerp-bruges"
    assert p.partners[0].feed == "feed.port-antwerp-bruges"
    with pytest.raises(PolicyValidationError) as exc:
        policy(partners=[{"id": "EUROPOL", "kind": "eu-agency", "feed": "audit"}])
    assert exc.value.located[0][0] == ("partners", 0, "feed")


def test_policy_cross_references_are_located() -> None:
    with pytest.raises(PolicyValidationError) as exc:
        parse_policy({
            "version": "1",
            "partners": [*PARTNERS, {"id": "EUROPOL", "kind": "eu-agency", "feed": "feed.x"},
                         {"id": "X", "kind": "customs", "feed": "feed.nl-customs"},
                         {"id": "Y", "kind": "customs", "feed": "feed.a_b"},
                         {"id": "Z", "kind": "customs", "feed": "feed.a.b"}],
            "rules": [rule("a"), rule("a", ["EUROPOLL"])],
        })
    errors = dict(exc.value.located)
    assert "duplicate partner id 'EUROPOL'" in errors[("partners", 6, "id")]
    assert "collides with partners[2].feed" in errors[("partners", 7, "feed")]
    assert "collides with partners[8].feed" in errors[("partners", 9, "feed")]
    assert "duplicate rule id 'a'" in errors[("rules", 1, "id")]
    assert "unknown partner 'EUROPOLL' (did you mean 'EUROPOL'?)" in errors[("rules", 1, "deliver_to", 0)]


@pytest.mark.parametrize(
    ("match", "loc", "text"),
    [
        ({"countries_any": []}, ("rules", 0, "match", "countries_any"), "must not be empty"),
        ({"tlp": ["RED"], "tlp_max": "AMBER"}, ("rules", 0, "match"), "leave no TLP label"),
        ({"handling_codes_any": ["H1"], "handling_codes_none": ["H1"]}, ("rules", 0, "match"),
         "in both"),
        ({"tlp": ["AMBER", "AMBER"]}, ("rules", 0, "match", "tlp"), "duplicate"),
        ({"alert_types": ["container"]}, ("rules", 0, "match", "alert_types", 0), "not valid"),
        ({"ports_any": ["ROTTERDAM"]}, ("rules", 0, "match", "ports_any", 0), "UN/LOCODE"),
        ({"min_information_assessment": 5}, ("rules", 0, "match", "min_information_assessment"),
         "expected '1'"),
        ({"empact": ["cch"]}, ("rules", 0, "match", "empact", 0, "code"), "EMPACT priority code"),
        ({"colour": "red"}, ("rules", 0, "match", "colour"), "unknown field"),
    ],
)
def test_bad_matches_are_rejected_with_their_path(
    match: dict[str, Any], loc: tuple[Any, ...], text: str
) -> None:
    with pytest.raises(PolicyValidationError) as exc:
        policy(rule(**match))
    assert exc.value.located[0][0] == loc, exc.value.located
    assert text in exc.value.located[0][1]


def test_policy_version_must_be_text_and_digest_is_the_loaders() -> None:
    with pytest.raises(PolicyValidationError, match="quote it"):
        parse_policy({"version": 1.10, "partners": PARTNERS})
    with pytest.raises(PolicyValidationError, match="set by the loader"):
        parse_policy({"version": "1", "partners": PARTNERS, "digest": "sha256:0"})
    p = parse_policy({"version": "1", "partners": PARTNERS}, digest="sha256:abc")
    assert p.revision == "1+sha256:abc"
    assert evaluate(p, header()).policy_version == "1+sha256:abc"


# -- each match dimension -------------------------------------------------------------------


def test_empty_match_matches_everything() -> None:
    assert delivered(policy(rule())) == ["EUROPOL"]


def test_alert_types() -> None:
    p = policy(rule(alert_types=["corruption-indicator", "operation-notice"]))
    assert delivered(p) == []
    assert delivered(p, alert_type="operation-notice") == ["EUROPOL"]


def test_tlp_list_and_tlp_max_ordering() -> None:
    p = policy(rule("amber", ["EUROPOL"], tlp=["AMBER", "AMBER+STRICT"]),
               rule("green", ["PORT-ROTTERDAM"], tlp_max="GREEN"))
    assert delivered(p, tlp="CLEAR") == ["PORT-ROTTERDAM"]
    assert delivered(p, tlp="GREEN") == ["PORT-ROTTERDAM"]
    assert delivered(p, tlp="AMBER") == ["EUROPOL"]
    assert delivered(p, tlp="AMBER+STRICT") == ["EUROPOL"]
    p = policy(rule(tlp_max="AMBER+STRICT"))
    assert delivered(p, tlp="AMBER+STRICT") == ["EUROPOL"]
    assert delivered(p, tlp="RED", release_to=["EUROPOL"]) == []


def test_handling_codes_any_and_none() -> None:
    p = policy(rule("evidence", ["EUROPOL"], handling_codes_any=["H1", "H3"]),
               rule("plain", ["NL-CUSTOMS"], handling_codes_none=["H1"]))
    assert delivered(p) == ["NL-CUSTOMS"]
    assert delivered(p, handling_codes=["H0", "H1"]) == ["EUROPOL"]
    assert delivered(p, handling_codes=["H3"], h3_conditions="ask first") == [
        "EUROPOL", "NL-CUSTOMS"]


def test_empact_with_and_without_cycle() -> None:
    p = policy(rule("any-cycle", ["EMPACT-CCH"], empact=["CCH"]),
               rule("old-cycle", ["EUROPOL"], empact=[{"cycle": "2022-2025", "code": "SYN-NPS"}]))
    assert delivered(p) == []
    assert delivered(p, empact_priority={"cycle": "2022-2025", "code": "CCH"}) == ["EMPACT-CCH"]
    assert delivered(p, empact_priority={"cycle": "2026-2029", "code": "CCH"}) == ["EMPACT-CCH"]
    assert delivered(p, empact_priority={"cycle": "2022-2025", "code": "SYN-NPS"}) == ["EUROPOL"]
    assert delivered(p, empact_priority={"cycle": "2026-2029", "code": "SYN-NPS"}) == []
    assert delivered(policy(rule(empact=["2026-2029/SYN-NPS"])),
                     empact_priority={"cycle": "2026-2029", "code": "SYN-NPS"}) == ["EUROPOL"]


def test_countries_include_the_country_of_each_port() -> None:
    p = policy(rule(countries_any=["NL"], deliver_to=["NL-CUSTOMS"]))
    assert delivered(p, countries=["BE"]) == []
    assert delivered(p, countries=["BE", "NL"]) == ["NL-CUSTOMS"]
    assert delivered(p, ports=["NLRTM"]) == ["NL-CUSTOMS"]


def test_ports() -> None:
    p = policy(rule(ports_any=["NLRTM", "nlams"], deliver_to=["PORT-ROTTERDAM"]))
    assert p.rules[0].match.ports_any == ["NLRTM", "NLAMS"]
    assert delivered(p, ports=["BEANR"]) == []
    assert delivered(p, ports=["BEANR", "NLRTM"]) == ["PORT-ROTTERDAM"]
    assert delivered(p, countries=["NL"]) == []  # a country is not a port


def test_producers() -> None:
    p = policy(rule(producers=["NL-POLICE", "BE-CUSTOMS"]))
    assert delivered(p) == []
    assert delivered(p, producer="BE-CUSTOMS") == ["EUROPOL"]


@pytest.mark.parametrize(
    ("threshold", "admitted"),
    [("A", "A"), ("B", "AB"), ("C", "ABC"), ("X", "ABCX")],
)
def test_source_reliability_threshold_x_counts_as_worst(threshold: str, admitted: str) -> None:
    p = policy(rule(min_source_reliability=threshold))
    for grade in "ABCX":
        assert (delivered(p, source_reliability=grade) == ["EUROPOL"]) == (grade in admitted)


@pytest.mark.parametrize("threshold", [1, 2, 3, 4])
def test_information_assessment_threshold(threshold: int) -> None:
    p = policy(rule(min_information_assessment=threshold))
    for grade in range(1, 5):
        got = delivered(p, information_assessment=str(grade))
        assert (got == ["EUROPOL"]) == (grade <= threshold)


def test_dimensions_are_anded_and_rules_are_additive() -> None:
    p = policy(
        rule("both", ["NL-CUSTOMS"], alert_types=["suspicious-container"], ports_any=["NLRTM"]),
        rule("all", ["EUROPOL", "NL-CUSTOMS"]),
    )
    d = evaluate(p, header(ports=["NLRTM"]))
    assert d.recipients == ["EUROPOL", "NL-CUSTOMS"]
    assert d.matched_rules == ["both", "all"]
    assert d.per_partner["NL-CUSTOMS"].reason == "matched:both"  # first rule in file order
    assert d.per_partner["EUROPOL"].reason == "matched:all"
    assert evaluate(p, header(alert_type="operation-notice", ports=["NLRTM"])).per_partner[
        "NL-CUSTOMS"].reason == "matched:all"


# -- default deny and the restrictions ------------------------------------------------------


def test_default_deny_covers_every_partner() -> None:
    d = evaluate(policy(rule(alert_types=["operation-notice"])), header())
    assert d.recipients == []
    assert list(d.per_partner) == sorted(ALL)
    assert {x.reason for x in d.per_partner.values()} == {"default-deny"}
    assert all(x.rule_id is None and not x.delivered for x in d.per_partner.values())
    assert evaluate(policy(), header()).recipients == []  # no rules at all


def test_originator_restriction_is_an_upper_bound() -> None:
    p = policy(rule(deliver_to=["EUROPOL", "NL-CUSTOMS"]))
    d = evaluate(p, header(release_to=["NL-CUSTOMS", "BE-CUSTOMS", "DE-CUSTOMS"]))
    assert d.recipients == ["NL-CUSTOMS"]
    assert d.per_partner["EUROPOL"].reason == "originator-restriction"
    assert d.per_partner["BE-CUSTOMS"].reason == "default-deny"  # named, but no rule
    assert d.per_partner["NL-POLICE"].reason == "originator-restriction"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tlp": "RED"}, "tlp-red-not-named"),
        ({"handling_codes": ["H2"]}, "h2-not-named"),
        ({"tlp": "RED", "handling_codes": ["H2"]}, "tlp-red-not-named"),
    ],
)
def test_red_and_h2_go_only_to_named_partners(overrides: dict[str, Any], code: str) -> None:
    p = policy(rule(deliver_to=ALL))
    d = evaluate(p, header(**overrides))  # nobody named: nobody receives it
    assert d.recipients == []
    assert {x.reason for x in d.per_partner.values()} == {code}
    d = evaluate(p, header(**overrides, release_to=["EUROPOL", "NL-POLICE", "FR-DOUANE"]))
    assert d.recipients == ["EUROPOL", "NL-POLICE"]
    assert d.per_partner["NL-CUSTOMS"].reason == code


def test_restrictions_win_over_rules_including_include_producer() -> None:
    p = policy({"id": "echo", "deliver_to": ALL, "include_producer": True})
    d = evaluate(p, header(producer="NL-CUSTOMS", tlp="RED", release_to=["EUROPOL"]))
    assert d.recipients == ["EUROPOL"]
    assert d.per_partner["NL-CUSTOMS"].code is DecisionCode.TLP_RED_NOT_NAMED


def test_producer_never_gets_its_own_alert_back_unless_a_rule_says_so() -> None:
    p = policy(rule("plain", ["EUROPOL", "NL-CUSTOMS"]))
    d = evaluate(p, header(producer="NL-CUSTOMS"))
    assert d.recipients == ["EUROPOL"]
    assert d.per_partner["NL-CUSTOMS"].reason == "producer-excluded"
    assert d.per_partner["NL-CUSTOMS"].rule_id == "plain"
    # a later matching rule with include_producer lets it through, and is the one reported
    p = policy(rule("plain", ["EUROPOL", "NL-CUSTOMS"]),
               {"id": "echo", "deliver_to": ["NL-CUSTOMS"], "include_producer": True,
                "match": {"tlp": ["AMBER"]}})
    d = evaluate(p, header(producer="NL-CUSTOMS"))
    assert d.recipients == ["EUROPOL", "NL-CUSTOMS"]
    assert d.per_partner["NL-CUSTOMS"].reason == "matched:echo"
    assert evaluate(p, header(producer="NL-CUSTOMS", tlp="GREEN")).recipients == ["EUROPOL"]


def test_require_named_rule_delivers_only_to_named_partners() -> None:
    p = policy({"id": "named", "deliver_to": ["NL-POLICE", "NL-CUSTOMS"], "require_named": True})
    assert delivered(p) == []
    assert delivered(p, release_to=["NL-POLICE"]) == ["NL-POLICE"]


def test_evaluate_accepts_alerts_and_headers_and_decision_serialises() -> None:
    p = load_policy(DEFAULT)
    alert = parse_alert(json.loads((EXAMPLES / "suspicious-container.json").read_text()),
                        empact_codes=CODES, producer="NL-CUSTOMS")
    d = evaluate(p, alert)
    assert d == evaluate(p, alert.header)
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["recipients"] == ["EUROPOL"]
    assert doc["partners"]["EUROPOL"] == {
        "delivered": True, "rule": "containers-to-europol",
        "reason": "matched:containers-to-europol", "detail": p.rule("containers-to-europol").description,
    }
    assert set(doc["partners"]) == {x.id for x in p.partners}


def test_check_case_reports_missing_unexpected_and_wrong_reasons() -> None:
    p = policy(rule(deliver_to=["EUROPOL"]))
    r = check_case(p, "c", header(), ["NL-CUSTOMS"], {"EUROPOL": "default-deny",
                                                      "NL-CUSTOMS": "default-deny"})
    assert not r.passed
    assert (r.missing, r.unexpected) == (["NL-CUSTOMS"], ["EUROPOL"])
    assert r.wrong_reasons == {"EUROPOL": ("default-deny", "matched:r")}
    assert check_case(p, "c", header(), ["EUROPOL"], {"EUROPOL": "matched"}).passed


# -- policy files -----------------------------------------------------------------------------


BAD_POLICY = """\
version: "2026.1"
partners:
  - id: EUROPOL
    kind: eu-agency
  - id: NO-POLICE
    kind: police
rules:
  - id: to-europol
    match:
      countries_any: [NO]
    deliver_to: [EUROPOL]
  - id: typo
    deliver_to:
      - NO-POLICE
      - EUROPOLL
"""


def test_policy_file_errors_name_file_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_POLICY)
    with pytest.raises(PolicyFileError) as exc:
        load_policy(path)
    assert str(exc.value) == (
        f"{path}: rules[1].deliver_to[1] (line 15): unknown partner 'EUROPOLL' "
        "(did you mean 'EUROPOL'?); declare it under partners"
    )


def test_yaml_no_is_norway_not_false() -> None:
    p = policy_from_text(BAD_POLICY.replace("EUROPOLL", "EUROPOL"))
    assert p.rules[0].match.countries_any == ["NO"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: '1'\npartners:\n  - id: EUROPOL\n    kind: eu-agency\n    colour: blue\n",
         "<policy>: partners[0].colour (line 5): unknown field"),
        ("version: '1'\npartners:\n  - id: EUROPOL\n    kind: agency\n",
         "<policy>: partners[0].kind (line 4): 'agency' is not valid"),
        ("version: '1'\npartners:\n  - id: EUROPOL\n    kind: eu-agency\n"
         "rules:\n  - id: r\n    match: {tlp_max: GREEN}\n",
         "<policy>: rules[0].deliver_to (line 6): required field is missing"),
        ("version: '1'\npartners: []\n", "<policy>: partners (line 2): must not be empty"),
        ("version: '1'\npartners:\n  - id: EUROPOL\n    kind: eu-agency\nrules: []\nrules: []\n",
         "<policy>: line 6: duplicate key 'rules' (first at line 5)"),
        ("version: '1'\npartners: [\n", "<policy>: invalid YAML: line 3, column 1"),
        ("- just\n- a list\n", "<policy>: policy (line 1): expected a mapping, got list"),
    ],
)
def test_policy_text_errors(text: str, expected: str) -> None:
    with pytest.raises(PolicyFileError) as exc:
        policy_from_text(text)
    assert str(exc.value).startswith(expected), str(exc.value)


def test_loaded_policies_compare_equal() -> None:
    """The router may compare a reloaded policy with the running one."""
    assert load_policy(DEFAULT) == load_policy(DEFAULT)
    assert load_policy(DEFAULT) != policy(rule())


def test_unknown_empact_code_is_caught_by_the_loader_not_the_core() -> None:
    text = ("version: '1'\npartners:\n  - {id: EUROPOL, kind: eu-agency}\n"
            "rules:\n  - id: r\n    match:\n      empact: [CHH]\n    deliver_to: [EUROPOL]\n")
    with pytest.raises(PolicyFileError, match=r"rules\[0\].match.empact\[0\] \(line 7\): unknown "
                       "EMPACT priority code 'CHH'"):
        policy_from_text(text)
    assert policy_from_text(text, check_empact=False).rules[0].match.empact is not None


def test_policy_revision_pins_the_file_bytes(tmp_path: Path) -> None:
    p = load_policy(DEFAULT)
    digest = policy_digest(DEFAULT.read_bytes())
    assert p.revision == f"{p.version}+{digest}"
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 12
    copy = tmp_path / "p.yaml"
    copy.write_bytes(DEFAULT.read_bytes() + b"\n# changed\n")
    assert load_policy(copy).revision != p.revision


def test_case_file_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "cases:\n"
        "  - name: one\n"
        "    alert:\n"
        "      header:\n"
        "        alert_type: suspicious-container\n"
        "        producer: NL-CUSTOMS\n"
        "        tlp: AMBERISH\n"
        "        source_reliability: A\n"
        "        information_assessment: '1'\n"
        "        summary: s\n"
        "      container_number: CSQU3054383\n"
        "    expect: [EUROPOLL]\n"
    )
    with pytest.raises(PolicyFileError) as exc:
        load_cases(path, policy=load_policy(DEFAULT))
    assert exc.value.problems == [
        "cases[0].expect[0] (line 12): 'EUROPOLL' is not a partner of the policy",
        "cases[0].alert.header.tlp (line 7): not a valid value: expected 'CLEAR', 'GREEN', "
        "'AMBER', 'AMBER+STRICT' or 'RED'",
    ]


# -- the shipped default policy ----------------------------------------------------------------


def test_default_policy_passes_its_cases() -> None:
    p = load_policy(DEFAULT)
    cases = load_cases(DEFAULT_CASES, policy=p)
    assert len(cases) >= 12
    failures = [
        r for r in (check_case(p, c.case.name, c.alert, c.case.expect, c.case.expect_reasons)
                    for c in cases)
        if not r.passed
    ]
    assert failures == []


def test_default_cases_cover_every_rule_and_reason() -> None:
    p = load_policy(DEFAULT)
    decisions = [evaluate(p, c.alert) for c in load_cases(DEFAULT_CASES)]
    delivered_by = {d.rule_id for dec in decisions for d in dec.per_partner.values() if d.delivered}
    assert delivered_by == {r.id for r in p.rules}
    codes = {d.code for dec in decisions for d in dec.per_partner.values()}
    assert codes == set(DecisionCode)


def test_default_policy_never_sends_amber_or_operations_to_port_authorities_unasked() -> None:
    p = load_policy(DEFAULT)
    ports = {x.id for x in p.partners if x.kind == "port-authority"}
    for alert_type in ("suspicious-container", "corruption-indicator", "operation-notice"):
        for tlp in ("AMBER", "AMBER+STRICT"):
            h = header(alert_type=alert_type, tlp=tlp, ports=["NLRTM", "BEANR", "DEHAM"])
            assert not ports & set(evaluate(p, h).recipients)
    h = header(alert_type="operation-notice", tlp="GREEN", ports=["NLRTM"])
    assert not ports & set(evaluate(p, h).recipients)


# -- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_validate() -> None:
    r = runner.invoke(app, ["policy", "validate", "--policy", str(DEFAULT)])
    assert r.exit_code == 0, r.output
    assert "valid" in r.stdout and "12 partners" in r.stdout


def test_cli_explain_json_covers_every_partner() -> None:
    r = runner.invoke(app, ["policy", "explain", "--policy", str(DEFAULT), "--json",
                            "--producer", "ES-CUSTOMS", str(EXAMPLES / "operation-notice.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["recipients"] == ["DE-CUSTOMS", "EUROPOL", "PORT-HAMBURG"]
    assert doc["producer"] == "ES-CUSTOMS"
    assert doc["partners"]["EMPACT-CCH"]["reason"] == "h2-not-named"
    assert doc["partners"]["PORT-HAMBURG"]["rule"] == "operations-to-named-ports"
    assert len(doc["partners"]) == 12


def test_cli_explain_table() -> None:
    r = runner.invoke(app, ["policy", "explain", "--policy", str(DEFAULT), "--producer",
                            "BE-FEDPOL", str(EXAMPLES / "corruption-indicator.json")],
                      env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert "tlp-red-not-named" in r.stdout
    assert "corruption-to-named-law-enforcement" in r.stdout
    assert "recipients: BE-CUSTOMS, EUROPOL, NL-POLICE" in r.stdout


def test_cli_explain_bad_alert_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps({"header": {"alert_type": "suspicious-container"}}))
    r = runner.invoke(app, ["policy", "explain", "--policy", str(DEFAULT), str(bad)])
    assert r.exit_code == 2
    assert "header.producer" in r.stderr


def test_cli_test_passes_on_shipped_cases() -> None:
    r = runner.invoke(app, ["policy", "test", "--policy", str(DEFAULT), str(DEFAULT_CASES)])
    assert r.exit_code == 0, r.output
    assert "FAIL" not in r.stdout
    assert r.stdout.count("PASS") >= 12


def test_cli_test_fails_with_a_diff(tmp_path: Path) -> None:
    cases = tmp_path / "c.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: wrong expectation\n"
        "    alert:\n"
        "      header: {alert_type: suspicious-container, producer: NL-CUSTOMS, tlp: AMBER,\n"
        "               source_reliability: B, information_assessment: '3', ports: [NLRTM],\n"
        "               summary: s}\n"
        "      container_number: CSQU3054383\n"
        "    expect: [NL-CUSTOMS]\n"
    )
    r = runner.invoke(app, ["policy", "test", "--policy", str(DEFAULT), str(cases)],
                      env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert r.exit_code == 1
    assert "FAIL wrong expectation" in r.stdout
    assert "- NL-CUSTOMS not delivered: producer-excluded" in r.stdout
    assert "+ EUROPOL delivered: matched:containers-to-europol" in r.stdout
    assert "0 passed, 1 failed" in r.stderr


def test_cli_bad_policy_exits_2_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_POLICY)
    for args in (["validate"], ["test", str(DEFAULT_CASES)],
                 ["explain", str(EXAMPLES / "suspicious-container.json")]):
        r = runner.invoke(app, ["policy", *args[:1], "--policy", str(path), *args[1:]],
                          env={"COLUMNS": "300"})
        assert r.exit_code == 2, (args, r.output)
        assert "rules[1].deliver_to[1] (line 15): unknown partner 'EUROPOLL'" in r.stderr


# -- property: a naive reading of docs/policy.md agrees with the compiled evaluator ----------

POOL = ["EUROPOL", "EMPACT-CCH", "NL-CUSTOMS", "BE-CUSTOMS", "DE-CUSTOMS", "NL-POLICE",
        "PORT-ROTTERDAM", "PORT-HAMBURG"]
KINDS = ["eu-agency", "empact", "customs", "police", "judicial", "port-authority",
         "private-operator"]
PRODUCERS = [*POOL, "ES-CUSTOMS", "FR-DOUANE"]
TLPS = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]
COUNTRIES = ["NL", "BE", "DE", "ES", "FR"]
PORTS = ["NLRTM", "BEANR", "DEHAM", "ESALG", "FRLEH"]
EMPACT = [("2026-2029", "CCH"), ("2026-2029", "SYN-NPS"), ("2022-2025", "CCH"),
          ("2026-2029", "HRCN")]


def subset(items: list[str], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(items), min_size=min_size, unique=True)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# The strategies are built once, here, not inside the composites: hypothesis validates a
# strategy the first time it draws from it, and building them per draw spent most of this
# property's time (about 60 %) validating the same strategies again for every example.
ALERT_TYPES = ["suspicious-container", "corruption-indicator", "operation-notice"]
CODES_HX = ["H0", "H1", "H2", "H3"]
MAYBE_TYPES = maybe(subset(ALERT_TYPES, 1))
MAYBE_TLP_MAX = maybe(st.sampled_from(TLPS))
# Each EMPACT priority written either way a policy may write it: {cycle, code} or the bare code.
MAYBE_EMPACT = maybe(st.lists(st.sampled_from([form for cycle, code in EMPACT
                                               for form in ({"cycle": cycle, "code": code}, code)]),
                              min_size=1))
MAYBE_COUNTRIES = maybe(subset(COUNTRIES, 1))
MAYBE_PORTS = maybe(subset(PORTS, 1))
MAYBE_PRODUCERS = maybe(subset(PRODUCERS, 1))
MAYBE_RELIABILITY = maybe(st.sampled_from("ABCX"))
MAYBE_ASSESSMENT = maybe(st.sampled_from("1234"))
MAYBE_TLPS_UP_TO = [maybe(subset(TLPS[: cap + 1], 1)) for cap in range(len(TLPS))]
MAYBE_CODES_ANY = maybe(subset(CODES_HX, 1))
MAYBE_CODES_NONE = {tuple(rest): maybe(subset(list(rest), 1))
                    for n in range(len(CODES_HX))
                    for rest in combinations(CODES_HX, n + 1)}
"""handling_codes_none over what handling_codes_any left: one strategy per possible rest."""
KIND = st.sampled_from(KINDS)
POOL_IDS = subset(POOL, 1)
RULE_COUNT = st.integers(0, 6)
DELIVER_TO = {tuple(ids): subset(list(ids), 1) for n in range(len(POOL))
              for ids in combinations(POOL, n + 1)}


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {
        "alert_types": draw(MAYBE_TYPES),
        "tlp_max": draw(MAYBE_TLP_MAX),
        "empact": draw(MAYBE_EMPACT),
        "countries_any": draw(MAYBE_COUNTRIES),
        "ports_any": draw(MAYBE_PORTS),
        "producers": draw(MAYBE_PRODUCERS),
        "min_source_reliability": draw(MAYBE_RELIABILITY),
        "min_information_assessment": draw(MAYBE_ASSESSMENT),
    }
    cap = TLPS.index(m["tlp_max"]) if m["tlp_max"] else 4
    m["tlp"] = draw(MAYBE_TLPS_UP_TO[cap])
    m["handling_codes_any"] = draw(MAYBE_CODES_ANY)
    rest = tuple(c for c in CODES_HX if c not in (m["handling_codes_any"] or []))
    m["handling_codes_none"] = draw(MAYBE_CODES_NONE[rest]) if rest else None
    return {k: v for k, v in m.items() if v is not None}


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    ids = draw(POOL_IDS)
    partners = [{"id": i, "kind": draw(KIND)} for i in ids]
    deliver_to = DELIVER_TO[tuple(i for i in POOL if i in ids)]
    rules = [
        {
            "id": f"r{n}",
            "match": draw(matches()),
            "deliver_to": draw(deliver_to),
            "include_producer": draw(st.booleans()),
            "require_named": draw(st.booleans()),
        }
        for n in range(draw(RULE_COUNT))
    ]
    return parse_policy({"version": "prop", "partners": partners, "rules": rules})


H_CODES = subset(CODES_HX)
MAYBE_PRIORITY = maybe(st.sampled_from(EMPACT))
ALERT_TYPE = st.sampled_from(ALERT_TYPES)
PRODUCER = st.sampled_from(PRODUCERS)
TLP = st.sampled_from(TLPS)
RELIABILITY = st.sampled_from("ABCX")
ASSESSMENT = st.sampled_from("1234")
RELEASE_TO = subset(PRODUCERS)
HEADER_COUNTRIES = subset(COUNTRIES)
HEADER_PORTS = subset(PORTS)


@st.composite
def headers(draw: st.DrawFn) -> AlertHeader:
    codes = draw(H_CODES)
    empact = draw(MAYBE_PRIORITY)
    return AlertHeader.model_validate({
        "alert_type": draw(ALERT_TYPE),
        "producer": draw(PRODUCER),
        "tlp": draw(TLP),
        "handling_codes": codes,
        "h3_conditions": "conditions" if "H3" in codes else None,
        "source_reliability": draw(RELIABILITY),
        "information_assessment": draw(ASSESSMENT),
        "empact_priority": {"cycle": empact[0], "code": empact[1]} if empact else None,
        "release_to": draw(RELEASE_TO),
        "countries": draw(HEADER_COUNTRIES),
        "ports": draw(HEADER_PORTS),
        "summary": "property test",
    }, context={EMPACT_CODES: CODES})


def naive_match(m: Match, h: AlertHeader) -> bool:
    """docs/policy.md, read literally; deliberately shares no code with the evaluator."""
    countries = set(h.countries) | {p[:2] for p in h.ports}
    ep = h.empact_priority
    checks = [
        m.alert_types is None or h.alert_type in m.alert_types,
        m.tlp is None or h.tlp in m.tlp,
        m.tlp_max is None or TLPS.index(h.tlp) <= TLPS.index(m.tlp_max),
        m.handling_codes_any is None or any(c in h.handling_codes for c in m.handling_codes_any),
        m.handling_codes_none is None or all(c not in h.handling_codes
                                             for c in m.handling_codes_none),
        m.empact is None or (ep is not None and any(
            s.code == ep.code and s.cycle in (None, ep.cycle) for s in m.empact)),
        m.countries_any is None or any(c in countries for c in m.countries_any),
        m.ports_any is None or any(p in h.ports for p in m.ports_any),
        m.producers is None or h.producer in m.producers,
        m.min_source_reliability is None
        or "ABCX".index(h.source_reliability) <= "ABCX".index(m.min_source_reliability),
        m.min_information_assessment is None
        or int(h.information_assessment) <= int(m.min_information_assessment),
    ]
    return all(checks)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), headers())
def test_property_delivered_set_within_policy_and_originator_restriction(
    p: Policy, h: AlertHeader
) -> None:
    d: Decision = evaluate(p, h)
    ids = {x.id for x in p.partners}
    named = set(h.release_to)
    recipients = set(d.recipients)

    # every partner gets a decision; recipients are exactly the delivered ones, sorted
    assert set(d.per_partner) == ids
    assert d.recipients == sorted(pid for pid, x in d.per_partner.items() if x.delivered)

    matching = [r for r in p.rules if naive_match(r.match, h)]
    assert d.matched_rules == [r.id for r in matching]

    def allowed_by(r: Any) -> set[str]:
        return {x for x in r.deliver_to if not r.require_named or x in named}

    allowed = set().union(*(allowed_by(r) for r in matching))
    # within the policy's allowed set
    assert recipients <= allowed
    # within the originator's restriction
    if named:
        assert recipients <= named
    # RED / H2: only named partners, and nobody at all when nobody is named
    if h.tlp == "RED" or "H2" in h.handling_codes:
        assert recipients <= named
        if not named:
            assert recipients == set()
    # never back to the producer unless a matching rule delivering to it says so
    if h.producer in recipients:
        assert any(r.include_producer and h.producer in allowed_by(r) for r in matching)

    # and exactly the documented result, reason by reason
    for pid, x in d.per_partner.items():
        restricted = pid not in named and (h.tlp == "RED" or "H2" in h.handling_codes or named)
        if restricted:
            assert not x.delivered and x.code in {
                DecisionCode.TLP_RED_NOT_NAMED, DecisionCode.H2_NOT_NAMED,
                DecisionCode.ORIGINATOR_RESTRICTION}
        elif pid not in allowed:
            assert (x.delivered, x.reason) == (False, "default-deny")
        elif pid == h.producer and not any(
            r.include_producer and pid in allowed_by(r) for r in matching
        ):
            assert (x.delivered, x.reason) == (False, "producer-excluded")
        else:
            assert x.delivered
            assert x.rule_id is not None and pid in allowed_by(p.rule(x.rule_id))
            assert p.rule(x.rule_id) in matching
