"""MISP export: events PyMISP loads, the right TLP tags, galaxies that exist, a complete feed folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from pymisp import MISPEvent
from pymispgalaxies.api import Clusters
from pytaxonomies import Taxonomies

from bus.adapters.misp_feed import HASHES, MANIFEST, country_galaxy, write_feed
from bus.core.codelists import HandlingCode, Tlp
from bus.core.models import AlertType, BaseAlert
from bus.errors import InvalidInput
from bus.interop.misp import SECTOR_GALAXY, distribution, misp_event, organisation_uuid, tlp_tag
from tests.alert_strategies import example_bodies, recorded, recorded_alerts

EXAMPLES = [recorded(body, index=i) for i, body in enumerate(example_bodies())]
COUNTRIES = country_galaxy()


def reloaded(alert: BaseAlert) -> MISPEvent:
    """The event as a MISP instance reads it from a feed file."""
    event = MISPEvent()
    event.load(json.dumps(misp_event(alert, countries=COUNTRIES).to_feed()))
    return event


def tags(event: MISPEvent) -> list[str]:
    return [t.name for t in event.tags]


@settings(max_examples=60, deadline=None)
@given(alert=recorded_alerts())
def test_events_load_in_pymisp_with_the_right_tlp_tag(alert: BaseAlert) -> None:
    event = reloaded(alert)
    assert event.uuid == str(alert.header.message_id)
    assert [t for t in tags(event) if t.startswith("tlp:")] == [tlp_tag(alert.header.tlp)]
    assert event.Orgc.name == alert.header.producer
    assert event.Orgc.uuid == str(organisation_uuid(alert.header.producer))
    message_ids = [a.value for a in event.attributes if a.category == "Internal reference"
                   and a.value == str(alert.header.message_id)]
    assert message_ids == [str(alert.header.message_id)]
    assert event.date.isoformat() == alert.header.created.date().isoformat()


@pytest.mark.parametrize("tlp", list(Tlp), ids=str)
def test_tlp_tags_are_in_misps_tlp_taxonomy(tlp: Tlp) -> None:
    assert tlp_tag(tlp) in {str(t) for t in Taxonomies()["tlp"].machinetags()}


def test_tlp_tags_per_example() -> None:
    expected = {"corruption-indicator": "tlp:red", "operation-notice": "tlp:amber+strict",
                "suspicious-container": "tlp:amber"}
    for alert in EXAMPLES[:3]:
        assert tlp_tag(alert.header.tlp) == expected[alert.alert_type.value]
        assert expected[alert.alert_type.value] in tags(reloaded(alert))


def test_galaxy_tags_name_existing_clusters() -> None:
    clusters = Clusters()
    known = {tag for name in ("country", "sector") for tag in clusters[name].machinetags()}
    used = {t for alert in EXAMPLES for t in tags(reloaded(alert)) if t.startswith("misp-galaxy:")}
    assert used, "the examples name countries and an organisation type"
    assert used <= known
    assert {f'misp-galaxy:sector="{v}"' for v in SECTOR_GALAXY.values()} <= known
    assert 'misp-galaxy:country="netherlands"' in used


def test_container_is_the_only_ids_attribute() -> None:
    for alert in EXAMPLES:
        flagged = [a.value for a in reloaded(alert).attributes if a.to_ids]
        if alert.alert_type is AlertType.SUSPICIOUS_CONTAINER:
            assert flagged == [alert.container_number]  # type: ignore[attr-defined]
        else:  # operation containers must be left alone, corruption links are context
            assert flagged == []


@pytest.mark.parametrize(("tlp", "codes", "expected"), [
    (Tlp.CLEAR, [], 3), (Tlp.GREEN, [], 1), (Tlp.AMBER, [], 0), (Tlp.RED, [], 0),
    (Tlp.CLEAR, [HandlingCode.H2], 0), (Tlp.GREEN, [HandlingCode.H1], 1),
])
def test_distribution_never_wider_than_the_alert_allows(tlp: Tlp, codes: list[HandlingCode], expected: int) -> None:
    alert = EXAMPLES[2]
    header = alert.header.model_copy(update={"tlp": tlp, "handling_codes": codes})
    assert distribution(alert.model_copy(update={"header": header})) == expected


def test_corruption_event_has_the_pseudonym_and_no_name_field() -> None:
    alert = next(a for a in EXAMPLES if a.alert_type is AlertType.CORRUPTION_INDICATOR)
    event = reloaded(alert)
    subject = [a for a in event.attributes if a.value == alert.subject_reference]  # type: ignore[attr-defined]
    assert len(subject) == 1 and "pseudonymised" in subject[0].comment
    assert not event.objects  # no person or identity objects


@settings(max_examples=30, deadline=None)
@given(alert=recorded_alerts())
def test_reexport_gives_the_same_feed_file(alert: BaseAlert) -> None:
    first = json.dumps(misp_event(alert, countries=COUNTRIES).to_feed(), sort_keys=True)
    second = json.dumps(misp_event(alert, countries=COUNTRIES).to_feed(), sort_keys=True)
    assert first == second


# -- the feed folder ------------------------------------------------------------------------------


def event_files(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.json") if p.name != MANIFEST}


def test_feed_manifest_lists_every_event(tmp_path: Path) -> None:
    result = write_feed([misp_event(a, countries=COUNTRIES) for a in EXAMPLES], tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert set(manifest) == event_files(tmp_path) == {str(a.header.message_id) for a in EXAMPLES}
    assert result.listed == len(EXAMPLES)
    for uuid, entry in manifest.items():
        event = MISPEvent()
        event.load_file(str(tmp_path / f"{uuid}.json"))
        assert entry["info"] == event.info
        assert [t["name"] for t in entry["Tag"]] == tags(event)


def test_feed_hashes_cover_every_attribute(tmp_path: Path) -> None:
    write_feed([misp_event(a, countries=COUNTRIES) for a in EXAMPLES[:3]], tmp_path)
    lines = set((tmp_path / HASHES).read_text().splitlines())
    for alert in EXAMPLES[:3]:
        for attribute in reloaded(alert).attributes:
            digest = hashlib.md5(str(attribute.value).encode()).hexdigest()
            assert f"{digest},{alert.header.message_id}" in lines


def test_feed_accumulates_and_replaces_by_message_id(tmp_path: Path) -> None:
    write_feed([misp_event(a) for a in EXAMPLES[:2]], tmp_path)
    write_feed([misp_event(a) for a in EXAMPLES[1:4]], tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert set(manifest) == {str(a.header.message_id) for a in EXAMPLES[:4]} == event_files(tmp_path)


def test_writing_the_same_feed_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    events = [misp_event(a, countries=COUNTRIES) for a in EXAMPLES]
    write_feed(events, tmp_path / "a")
    write_feed(events, tmp_path / "b")
    for name in [MANIFEST, HASHES, *(f"{a.header.message_id}.json" for a in EXAMPLES)]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_broken_event_file_in_the_feed_is_named(tmp_path: Path) -> None:
    write_feed([misp_event(EXAMPLES[0])], tmp_path)
    broken = tmp_path / "0193ffff-0000-7000-8000-000000000000.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidInput, match=broken.name):
        write_feed([misp_event(EXAMPLES[1])], tmp_path)
