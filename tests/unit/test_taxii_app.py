"""The TAXII 2.1 API over a feed index on the memory engine: resources, filters, paging, refusals.

The real chain (bus publish -> router -> feed -> console --taxii) and the OASIS client are in
tests/integration/test_taxii.py; here every rule is checked against the HTTP answers.
"""

from __future__ import annotations

import base64
import itertools
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import structlog
import structlog.testing
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.adapters.federation_file import make_demo
from bus.adapters.feed_index import Verdict
from bus.adapters.users_file import UsersFile
from bus.core.trust import FederationDirectory
from bus.services.feed_verdicts import FeedVerifier
from bus.services.taxii.cursor import decode
from bus.services.taxii.feed import StixFeed, collections_for, date_added, micros, taxii_timestamp
from bus.web.console import ConsoleConfig, create_app
from bus.web.console.auth import MAX_FAILURES, Authenticator, parse_networks
from bus.web.taxii import TaxiiAuth, TaxiiConfig, create_taxii_app
from bus.web.taxii.media import TAXII_MEDIA_TYPE
from tests.console_fixtures import MEMBER, TOPIC, Feed, container, drain
from tests.helpers import CODES, SCHEMAS, example

PASSWORD = "opencti connector password"
ROOT = "/taxii2/europol/"
CONTAINERS = ROOT + "collections/suspicious-container/"


def basic(user: str = "opencti", password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": TAXII_MEDIA_TYPE}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("federation"))


class World:
    def __init__(self, fed, tmp_path, *, proxy: bool = False, auth: TaxiiAuth | None = None) -> None:
        self.current: dict[str, FederationDirectory] = {"directory": fed.directory}
        self.feed = Feed(fed)
        verifier = FeedVerifier(lambda: self.current["directory"], self.feed.verifier().state().decryptor,
                                SCHEMAS, CODES)
        self.indexer = self.feed.indexer(tmp_path / "i.sqlite", verifier=verifier)
        if auth is None:
            self.users = UsersFile(tmp_path / "users.yaml")
            self.users.add("opencti", PASSWORD)
            auth = TaxiiAuth(Authenticator(users=None if proxy else self.users,
                                           proxy_header="X-Forwarded-User" if proxy else None,
                                           trusted_proxies=parse_networks(["127.0.0.1"])))
        self.stix = StixFeed(self.indexer.index, CODES)
        taxii = create_taxii_app(TaxiiConfig(MEMBER), self.stix, auth)
        app = create_app(ConsoleConfig(MEMBER, TOPIC, auth.auth, session_secret="s" * 32), self.indexer.index,
                         self.indexer, mounts={"/taxii2": taxii})
        self.app = app
        self.client = TestClient(app, follow_redirects=False)
        self.clock_ms = 1_790_000_000_000
        """Kafka timestamps of the records put: a second apart, in the order put."""

    def put(self, *alerts, **kwargs) -> None:
        for alert in alerts:
            self.clock_ms += 1000
            self.feed.put(alert, timestamp_ms=self.clock_ms, **kwargs)
        drain(self.indexer, len(alerts))

    def get(self, path: str, **params) -> dict:
        response = self.client.get(path, params=params, headers=basic())
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == TAXII_MEDIA_TYPE
        return response.json()


@pytest.fixture
def world(fed, tmp_path) -> World:
    return World(fed, tmp_path)


@pytest.fixture(scope="module")
def shared_auth(tmp_path_factory) -> TaxiiAuth:
    """One account for many worlds: argon2 hashes and checks the password once."""
    users = UsersFile(tmp_path_factory.mktemp("users") / "users.yaml")
    users.add("opencti", PASSWORD)
    return TaxiiAuth(Authenticator(users=users))


def mains(objects) -> list[str]:
    """Message ids of the alerts whose main object (grouping or report) is in `objects`."""
    ext = "extension-definition--8c1ab08e-e5fc-48d1-865a-3b920c8822de"
    return [o["extensions"][ext]["message_id"] for o in objects if "alert" in o.get("extensions", {}).get(ext, {})]


def all_pages(world: World, path: str, next: str | None = None, **params) -> tuple[list[dict], list[dict]]:
    """Every page of a listing with `next` (from `next` if given); returns (items, envelopes)."""
    items, envelopes = [], []
    cursor = next
    while True:
        envelope = world.get(path, **params, **({"next": cursor} if cursor else {}))
        envelopes.append(envelope)
        items += envelope.get("objects", [])
        if not envelope["more"]:
            return items, envelopes
        cursor = envelope["next"]


# -- discovery and resources ----------------------------------------------------------------------


def test_discovery_api_root_and_collections(world):
    discovery = world.get("/taxii2/")
    assert discovery["api_roots"] == [ROOT] and discovery["default"] == ROOT and "EUROPOL" in discovery["title"]
    root = world.get(ROOT)
    assert root["versions"] == [TAXII_MEDIA_TYPE] and root["max_content_length"] == 0
    collections = world.get(ROOT + "collections/")["collections"]
    assert [c["title"] for c in collections] == ["suspicious-container", "corruption-indicator", "operation-notice"]
    assert all(c["can_read"] and not c["can_write"] for c in collections)
    assert all(c["media_types"] == ["application/stix+json;version=2.1"] for c in collections)
    assert [c["id"] for c in collections] == [c.id for c in collections_for(TOPIC)]  # stable across restarts
    by_id = world.get(ROOT + f"collections/{collections[0]['id']}/")
    assert by_id == collections[0] == world.get(CONTAINERS)  # the title works as an alias


def test_every_answer_and_error_is_the_taxii_media_type_with_the_error_envelope(world):
    for path, status in ((ROOT + "collections/nope/", 404), ("/taxii2/be-customs/", 404),
                         ("/taxii2/europol/status/x/", 404), (CONTAINERS + "objects/?limit=0", 400),
                         (CONTAINERS + "objects/?next=garbage", 400),
                         (CONTAINERS + "objects/?match[type]=indicator&match[type]=note", 400),
                         (CONTAINERS + "objects/?match[version]=all,last", 400),
                         (CONTAINERS + "objects/?match[version]=last,last", 400)):
        response = world.client.get(path, headers=basic())
        assert response.status_code == status, path
        assert response.headers["content-type"] == TAXII_MEDIA_TYPE
        body = response.json()
        assert body["http_status"] == str(status) and body["title"] and body["description"]
    assert world.client.get(CONTAINERS + "objects/?limit=x", headers=basic()).json()["details"] == {
        "parameter": "limit"}


def test_without_credentials_or_with_a_wrong_password_it_is_401(world):
    for headers in ({"Accept": TAXII_MEDIA_TYPE}, basic(password="wrong password!!"), basic(user="mallory"),
                    {"Authorization": "Basic !!notbase64", "Accept": TAXII_MEDIA_TYPE},
                    {"Authorization": "Bearer abc", "Accept": TAXII_MEDIA_TYPE}):
        response = world.client.get("/taxii2/", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Basic realm="EPA bus TAXII EUROPOL"')
        assert response.json()["http_status"] == "401"
    assert world.client.get(CONTAINERS + "objects/", headers={"Accept": TAXII_MEDIA_TYPE}).status_code == 401


def test_repeated_wrong_passwords_lock_the_name(world):
    for _ in range(MAX_FAILURES):
        assert world.client.get("/taxii2/", headers=basic(password="wrong password!!")).status_code == 401
    locked = world.client.get("/taxii2/", headers=basic())
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"


def test_a_changed_password_or_removed_user_is_refused_at_once(world):
    assert world.client.get("/taxii2/", headers=basic()).status_code == 200
    world.users.add("opencti", "a brand new password", replace=True)
    assert world.client.get("/taxii2/", headers=basic()).status_code == 401
    assert world.client.get("/taxii2/", headers=basic(password="a brand new password")).status_code == 200
    world.users.remove("opencti")
    assert world.client.get("/taxii2/", headers=basic(password="a brand new password")).status_code == 401


@pytest.mark.parametrize("accept, status", [
    (TAXII_MEDIA_TYPE, 200), ("application/taxii+json", 200), ("application/taxii+json; version=2.1", 200),
    ("text/html, application/taxii+json;version=2.1;q=0.5", 200), ("application/taxii+json;version=2.0", 406),
    ("application/json", 406), ("*/*", 406), ("application/vnd.oasis.taxii+json", 406),
    ("application/taxii+json;version=2.1;q=0", 406),
])
def test_content_negotiation(fed, tmp_path, shared_auth, accept, status):
    world = World(fed, tmp_path, auth=shared_auth)
    response = world.client.get("/taxii2/", headers={**basic(), "Accept": accept})
    assert response.status_code == status
    assert response.headers["content-type"] == TAXII_MEDIA_TYPE


def test_the_collections_are_read_only(world):
    url = CONTAINERS + "objects/"
    wrong_type = world.client.post(url, headers={**basic(), "Content-Type": "application/json"}, content=b"{}")
    assert wrong_type.status_code == 415 and wrong_type.json()["http_status"] == "415"
    right_type = world.client.post(url, headers={**basic(), "Content-Type": TAXII_MEDIA_TYPE}, content=b"{}")
    assert right_type.status_code == 403
    assert world.client.delete(url + "indicator--942bf875-42f2-5933-b3c1-27395bd82b8f/",
                               headers=basic()).status_code == 403
    assert world.client.put(url, headers=basic()).status_code == 405


# -- what is served -------------------------------------------------------------------------------


def test_only_verified_or_decrypted_alerts_are_served(world):
    plain = container("Bananas over weight")
    for_us = container("Encrypted for Europol", tlp="RED", release_to=[MEMBER])
    for_others = container("Encrypted for Belgium", tlp="RED", release_to=["BE-CUSTOMS"])
    forged = container("Forged")
    world.put(plain)
    world.put(for_us, for_others, encrypt=True)
    world.put(forged, tamper=True)
    verdicts = Counter(r.verdict for r in world.indexer.index.search())
    assert verdicts == {Verdict.VERIFIED: 1, Verdict.DECRYPTED: 1, Verdict.SEALED: 1, Verdict.FAILED: 1}
    objects, _ = all_pages(world, CONTAINERS + "objects/")
    assert sorted(mains(objects)) == sorted([str(plain.header.message_id), str(for_us.header.message_id)])
    text = str(objects)
    assert "Encrypted for Belgium" not in text and "Forged" not in text


def test_each_alert_brings_its_objects_and_the_definitions_they_use(world):
    alert = container("A red one", tlp="RED", handling_codes=["H3"], h3_conditions="Ask DE-CUSTOMS first.")
    world.put(alert)
    objects = world.get(CONTAINERS + "objects/")["objects"]
    types = [o["type"] for o in objects]
    assert types[:3] == ["extension-definition"] * 3 and types.count("marking-definition") == 2
    assert types[5:] == ["grouping", "indicator", "observed-data", "epa-shipping-container", "relationship"]
    ids = {o["id"] for o in objects}
    for obj in objects:  # every reference resolves within the page
        assert set(obj.get("object_marking_refs", [])) <= ids
    assert "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1" in ids  # TLP:RED


def test_a_definition_is_sent_once_per_page(world):
    world.put(*(container(f"alert {i}") for i in range(4)))
    objects = world.get(CONTAINERS + "objects/", limit=1000)["objects"]
    counts = Counter(o["id"] for o in objects)
    assert max(counts.values()) == 1 and len(mains(objects)) == 4


def test_the_collections_split_the_feed_by_alert_type(world):
    world.put(container("one container"), example("corruption-indicator", producer="BE-CUSTOMS",
                                                  release_to=[MEMBER]),
              example("operation-notice", producer="ES-CUSTOMS", release_to=[MEMBER]))
    for title, main in (("suspicious-container", "grouping"), ("corruption-indicator", "grouping"),
                        ("operation-notice", "report")):
        objects = world.get(ROOT + f"collections/{title}/objects/")["objects"]
        assert len(mains(objects)) == 1
        assert [o["type"] for o in objects if mains([o])] == [main]
    corruption = world.get(ROOT + "collections/corruption-indicator/objects/")["objects"]
    assert not {o["type"] for o in corruption} & {"identity", "threat-actor"}


def test_paging_with_next_gives_every_alert_once_in_full_pages(world):
    alerts = [container(f"alert {i}") for i in range(23)]
    world.put(*alerts)
    objects, envelopes = all_pages(world, CONTAINERS + "objects/", limit=17)
    assert Counter(mains(objects)) == Counter(str(a.header.message_id) for a in alerts)
    assert all(len(e["objects"]) == 17 for e in envelopes[:-1])  # taxii2client's as_pages relies on it
    assert len(envelopes) >= len(alerts) * 5 / 17  # five objects of its own per alert, definitions besides
    # the same collection, read again from the first page's cursor, continues where it was
    again = world.get(CONTAINERS + "objects/", limit=17, next=envelopes[0]["next"])
    assert again == envelopes[1]


def test_next_only_moves_forward_and_new_alerts_come_after_it(world):
    early = [container(f"early {i}") for i in range(4)]
    world.put(*early)
    _, envelopes = all_pages(world, CONTAINERS + "objects/", limit=6)
    cursors = [decode(e["next"]) for e in envelopes if e["more"]]
    partitions = range(world.feed.partitions)
    for before, after in itertools.pairwise(cursors):
        assert all(after.position(p) >= before.position(p) for p in partitions)
        assert any(after.position(p) > before.position(p) for p in partitions)
    # from the first page's cursor: the rest of the early alerts, then one that came since; never the first again
    first = envelopes[0]
    late = container("late")
    world.put(late)
    rest, _ = all_pages(world, CONTAINERS + "objects/", limit=6, next=first["next"])
    handed = mains(first["objects"]) + mains(rest)
    assert Counter(handed) == Counter(str(a.header.message_id) for a in [*early, late])
    assert handed[-1] == str(late.header.message_id)


def test_next_keeps_its_filters(world):
    world.put(*(container(f"alert {i}") for i in range(5)))
    first = world.get(CONTAINERS + "objects/", limit=2, **{"match[type]": "indicator"})
    # next alone continues the same query (OpenCTI's TAXII2 connector drops the other filters)
    second = world.get(CONTAINERS + "objects/", limit=2, next=first["next"])
    same = world.get(CONTAINERS + "objects/", limit=2, next=first["next"], **{"match[type]": "indicator"})
    assert same == second
    assert [o["type"] for o in first["objects"] + second["objects"]] == ["indicator"] * 4


def test_a_next_that_contradicts_the_request_is_set_aside(world):
    """OpenCTI's TAXII2 connector sends the last next of a run again with the next run's added_after,
    and to its other collections: the request's own filters win, from their start."""
    alerts = [container(f"alert {i}") for i in range(5)]
    world.put(*alerts)
    run_one = world.get(CONTAINERS + "objects/", limit=7, added_after=date_added(0))
    world.put(late := container("late"))
    since = date_added(world.clock_ms - 1)
    run_two = world.client.get(CONTAINERS + "objects/", headers=basic(),
                               params={"limit": 7, "added_after": since, "next": run_one["next"]})
    assert run_two.status_code == 200 and "another added_after" in run_two.headers["x-epa-next-set-aside"]
    assert mains(run_two.json()["objects"]) == [str(late.header.message_id)]
    elsewhere = world.client.get(ROOT + "collections/operation-notice/objects/", headers=basic(),
                                 params={"next": run_one["next"]})
    assert elsewhere.status_code == 200 and "objects" not in elsewhere.json()  # containers never leak
    assert "another collection" in elsewhere.headers["x-epa-next-set-aside"]
    followed = world.client.get(CONTAINERS + "objects/", headers=basic(), params={"next": run_one["next"]})
    assert "x-epa-next-set-aside" not in followed.headers


def test_clients_that_repeat_added_after_with_next_page_on(world):
    """OpenCTI's built-in ingester sends next with the first request's added_after, one page per run."""
    alerts = [container(f"alert {i}") for i in range(6)]
    world.put(*alerts)
    since = date_added(world.clock_ms - 4500)  # after the first alert (a second apart), before the second
    envelope = world.get(CONTAINERS + "objects/", added_after=since, limit=8)
    handed = mains(envelope["objects"])
    while envelope["more"]:
        envelope = world.get(CONTAINERS + "objects/", added_after=since, next=envelope["next"], limit=8)
        handed += mains(envelope["objects"])
    assert handed == [str(a.header.message_id) for a in alerts[1:]]
    without_limit = world.get(CONTAINERS + "objects/")  # no limit: one page of up to 1000 objects
    assert len(mains(without_limit["objects"])) == 6 and not without_limit["more"]


def test_match_type_id_version_and_spec_version(world):
    alerts = [container(f"alert {i}", created=f"2026-11-2{i}T10:00:00.000Z") for i in range(3)]
    world.put(*alerts)
    indicators = world.get(CONTAINERS + "objects/", **{"match[type]": "indicator,relationship"})["objects"]
    assert Counter(o["type"] for o in indicators) == {"indicator": 3, "relationship": 3}
    wanted = [indicators[0]["id"], indicators[1]["id"]]
    by_id = world.get(CONTAINERS + "objects/", **{"match[id]": ",".join(wanted)})["objects"]
    assert sorted(o["id"] for o in by_id) == sorted(wanted)
    version = indicators[0]["modified"]
    assert [o["id"] for o in world.get(CONTAINERS + "objects/", **{"match[type]": "indicator",
                                                                   "match[version]": version})["objects"]] == [
        indicators[0]["id"]]
    assert len(world.get(CONTAINERS + "objects/", **{"match[type]": "indicator", "match[version]": "all"})[
        "objects"]) == 3
    assert world.get(CONTAINERS + "objects/", **{"match[spec_version]": "2.0"}) == {"more": False}  # no empty list
    assert len(mains(world.get(CONTAINERS + "objects/", **{"match[spec_version]": "2.0,2.1"})["objects"])) == 3
    bad = world.client.get(CONTAINERS + "objects/", params={"match[id]": "not-an-id"}, headers=basic())
    assert bad.status_code == 400 and bad.json()["details"] == {"parameter": "match[id]"}
    # a match field TAXII does not define is ignored, as the specification lets a server do
    assert world.get(CONTAINERS + "objects/", **{"match[label]": "x"}) == world.get(CONTAINERS + "objects/")


def test_added_after_and_date_added_are_the_kafka_timestamps(world):
    first, second = container("first"), container("second")
    world.put(first)
    manifest = world.get(CONTAINERS + "manifest/")["objects"]
    (record,) = world.indexer.index.search()
    assert {m["date_added"] for m in manifest} == {date_added(record.timestamp_ms)} == {
        date_added(world.clock_ms)}
    assert all(m["media_type"] == "application/stix+json;version=2.1" for m in manifest)
    stamp = manifest[-1]["date_added"]
    world.put(second)
    response = world.client.get(CONTAINERS + "objects/", params={"added_after": stamp}, headers=basic())
    assert mains(response.json()["objects"]) == [str(second.header.message_id)]
    assert response.headers["x-taxii-date-added-first"] == response.headers["x-taxii-date-added-last"] == (
        date_added(world.clock_ms))
    everything = world.get(CONTAINERS + "objects/", added_after=date_added(record.timestamp_ms - 1))
    assert mains(everything["objects"]) == [str(first.header.message_id), str(second.header.message_id)]
    # microseconds and UTC offsets are understood: strictly after, to the microsecond
    assert mains(world.get(CONTAINERS + "objects/", added_after=stamp.replace("Z", "999Z"))["objects"]) == [
        str(second.header.message_id)]
    one_us_before = date_added(record.timestamp_ms - 1).replace("Z", "999Z")
    assert len(mains(world.get(CONTAINERS + "objects/", added_after=one_us_before)["objects"])) == 2
    in_paris = world.get(CONTAINERS + "objects/", added_after=stamp.replace("Z", "+00:00"))
    assert mains(in_paris["objects"]) == [str(second.header.message_id)]
    bad = world.client.get(CONTAINERS + "objects/", params={"added_after": "yesterday"}, headers=basic())
    assert bad.status_code == 400 and bad.json()["details"] == {"parameter": "added_after"}


def test_the_manifest_lists_what_objects_serves(world):
    world.put(*(container(f"alert {i}") for i in range(4)))
    objects, _ = all_pages(world, CONTAINERS + "objects/", limit=7)
    manifest, _ = all_pages(world, CONTAINERS + "manifest/", limit=7)
    assert [m["id"] for m in manifest] == [o["id"] for o in objects]
    for obj, entry in zip(objects, manifest, strict=True):  # TAXII: a STIX object's version is its modified
        assert entry["version"] == obj.get("modified", obj.get("created", entry["version"]))
        assert entry["date_added"].endswith("000Z") and len(entry["date_added"]) == len("2026-11-30T10:00:00.000000Z")


def test_one_object_and_its_versions(world):
    alert = container("one")
    world.put(alert)
    indicator = world.get(CONTAINERS + "objects/", **{"match[type]": "indicator"})["objects"][0]
    got = world.get(CONTAINERS + f"objects/{indicator['id']}/")
    assert got["objects"] == [indicator] and got["more"] is False
    assert world.get(CONTAINERS + f"objects/{indicator['id']}/versions/")["versions"] == [indicator["modified"]]
    container_sco = world.get(CONTAINERS + "objects/", **{"match[type]": "epa-shipping-container"})["objects"][0]
    (sco_version,) = world.get(CONTAINERS + f"objects/{container_sco['id']}/versions/")["versions"]
    assert sco_version == indicator["created"]  # not versioned in STIX: its alert's created
    # a version given to another precision still names it
    same = world.get(CONTAINERS + "objects/", **{"match[id]": indicator["id"],
                                                  "match[version]": taxii_timestamp(micros(indicator["modified"]))})
    assert same["objects"] == [indicator]
    missing = world.client.get(CONTAINERS + "objects/indicator--00000000-0000-4000-8000-000000000000/",
                               headers=basic())
    assert missing.status_code == 404 and missing.json()["http_status"] == "404"
    elsewhere = world.client.get(ROOT + f"collections/operation-notice/objects/{indicator['id']}/", headers=basic())
    assert elsewhere.status_code == 404


def test_a_record_verified_again_and_failing_is_no_longer_served(fed, world):
    alert = container("before the directory changed")
    world.put(alert)
    assert mains(world.get(CONTAINERS + "objects/")["objects"]) == [str(alert.header.message_id)]
    without_nl = tuple(m for m in fed.directory.members if m.id != "NL-CUSTOMS")
    world.current["directory"] = fed.directory.model_copy(update={"members": without_nl, "version": 2})
    world.indexer.step()
    assert world.indexer.index.search()[0].verdict is Verdict.FAILED
    assert "objects" not in world.get(CONTAINERS + "objects/")
    assert "objects" not in world.get(CONTAINERS + "manifest/")
    world.current["directory"] = fed.directory.model_copy(update={"version": 3})
    world.indexer.step()
    assert mains(world.get(CONTAINERS + "objects/")["objects"]) == [str(alert.header.message_id)]


def test_records_not_listed_yet_hold_the_cursor_back(world, monkeypatch):
    """A record the STIX listing has not reached is not served, nor anything indexed after it, and
    the page says more: the cursor never passes a record a client has not had."""
    world.put(*(container(f"listed {i}") for i in range(3)))
    first = world.get(CONTAINERS + "objects/", limit=1000)
    monkeypatch.setattr(world.stix, "catch_up", lambda *args, **kwargs: 0)  # the lister is far behind
    waiting = [container(f"waiting {i}") for i in range(4)]
    world.put(*waiting)
    assert world.indexer.index.stix_frontier() is not None
    everything = world.get(CONTAINERS + "objects/", limit=1000)
    assert everything["objects"] == first["objects"] and everything["more"]
    monkeypatch.undo()
    rest, _ = all_pages(world, CONTAINERS + "objects/", limit=1000, next=everything["next"])
    assert sorted(mains(rest)) == sorted(str(a.header.message_id) for a in waiting)
    assert world.indexer.index.stix_frontier() is None


def test_an_alert_the_mapping_cannot_take_holds_nothing_back(world, monkeypatch):
    import bus.services.taxii.feed as feed_module

    real = feed_module.alert_objects

    def fragile(alert):
        if alert.header.summary == "poison":
            raise RuntimeError("the mapping has a bug")
        return real(alert)

    monkeypatch.setattr(feed_module, "alert_objects", fragile)
    logged = structlog.testing.CapturingLogger()
    monkeypatch.setattr(feed_module, "log", structlog.wrap_logger(logged, processors=[]))
    first, poison, last = container("first"), container("poison"), container("last")
    world.put(first, poison, last)
    envelope = world.get(CONTAINERS + "objects/")
    assert mains(envelope["objects"]) == [str(first.header.message_id), str(last.header.message_id)]
    assert envelope["more"] is False
    (call,) = logged.calls  # the operator is told which record, and why (the traceback)
    assert call.method_name == "error" and call.kwargs["event"].startswith("alert not mapped to STIX")
    assert call.kwargs["exc_info"] is True


# -- proxy mode -----------------------------------------------------------------------------------


def test_in_proxy_mode_the_proxy_names_the_client(fed, tmp_path):
    world = World(fed, tmp_path, proxy=True)
    world.put(container("through the proxy"))
    named = {"X-Forwarded-User": "opencti", "Accept": TAXII_MEDIA_TYPE}
    proxy = TestClient(world.app, client=("127.0.0.1", 40000))
    served = proxy.get(CONTAINERS + "objects/", headers=named)
    assert served.status_code == 200 and len(mains(served.json()["objects"])) == 1
    unnamed = proxy.get("/taxii2/", headers={"Accept": TAXII_MEDIA_TYPE})
    assert unnamed.status_code == 401 and unnamed.headers["www-authenticate"].startswith("Basic")
    direct = world.client.get("/taxii2/", headers=named)  # not from the proxy: the header is not believed
    assert direct.status_code == 403 and direct.json()["http_status"] == "403"
    assert direct.headers["content-type"] == TAXII_MEDIA_TYPE


@given(stamps=st.lists(st.integers(0, 20), min_size=1, max_size=9), limit=st.integers(1, 23),
       cut=st.integers(-1, 21))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_the_timestamps_next_hands_out_each_alert_once_and_added_after_exactly_the_later_ones(
        fed, shared_auth, stamps, limit, cut):
    """Records reach the partitions with Kafka timestamps in any order (a partition behind, clocks
    apart): paging with next still gives every alert once; added_after gives those stamped later."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(fed, Path(tmp), auth=shared_auth)
        base = 1_790_000_000_000
        alerts = []
        for i, stamp in enumerate(stamps):
            alert = container(f"alert {i}")
            world.feed.put(alert, timestamp_ms=base + stamp * 1000)
            alerts.append((alert, stamp))
        drain(world.indexer, len(alerts))
        objects, _ = all_pages(world, CONTAINERS + "objects/", limit=limit)
        assert Counter(mains(objects)) == Counter(str(a.header.message_id) for a, _ in alerts)
        later, _ = all_pages(world, CONTAINERS + "objects/", limit=limit,
                             added_after=date_added(base + cut * 1000))
        _, manifests = all_pages(world, CONTAINERS + "manifest/", limit=limit)
        for page in manifests:  # each page ascending by date added, as TAXII wants
            added = [m["date_added"] for m in page.get("objects", [])]
            assert added == sorted(added)
        assert Counter(mains(later)) == Counter(str(a.header.message_id) for a, s in alerts if s > cut)
        world.indexer.close()
        world.indexer.index.close()
