"""The console's HTTP behaviour (no browser): sign-in, the proxy mode, CSRF, pages, acknowledgements."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from bus.adapters.federation_file import make_demo
from bus.adapters.kafka import Record, text_headers
from bus.adapters.users_file import UsersFile
from bus.composition import Bus
from bus.core.receipts import AckStatus as WireStatus
from bus.core.receipts import verify_ack
from bus.core.topology import ACKS_TOPIC
from bus.errors import KafkaUnavailable, KeyOwnerMismatch
from bus.web.console import ConsoleConfig, create_app
from bus.web.console.acks import AckRequest, AckStatus
from bus.web.console.auth import MAX_FAILURES, Authenticator, parse_networks
from tests.console_fixtures import MEMBER, TOPIC, Feed, container, drain
from tests.helpers import run_bus

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("federation"))


class Recorder:
    """Acknowledgements the page asked for (the real service signs and publishes them)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[AckRequest] = []
        self.fail = fail

    def acknowledge(self, request: AckRequest) -> str:
        if self.fail:
            raise self.fail
        self.sent.append(request)
        return "acks partition 0 offset 3"


@pytest.fixture
def world(fed, tmp_path):
    feed = Feed(fed)
    feed.put(container("Bananas over weight"), rule=None)
    feed.put(container("forged"), tamper=True)
    indexer = feed.indexer(tmp_path / "i.sqlite")
    drain(indexer, 2)
    users = UsersFile(tmp_path / "users.yaml")
    users.add("alice", PASSWORD)
    return indexer, users


def client_for(world, *, acknowledger=None, **auth) -> TestClient:
    indexer, users = world
    authenticator = Authenticator(users=users, **auth)
    app = create_app(ConsoleConfig(MEMBER, TOPIC, authenticator, session_secret="s" * 32), indexer.index, indexer,
                     acknowledger)
    return TestClient(app, follow_redirects=False)


def csrf(client: TestClient, path: str = "/login") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, password: str = PASSWORD, user: str = "alice"):
    return client.post("/login", data={"username": user, "password": password, "csrf": csrf(client), "next": "/"})


def test_pages_need_a_signed_in_officer(world):
    client = client_for(world)
    assert client.get("/").headers["location"] == "/login?next=/"
    assert client.get("/record/0/0").status_code == 303
    assert client.get("/rows").status_code == 401 and client.get("/events").status_code == 401
    assert client.get("/static/console.css").status_code == 200  # assets are public, data is not


def test_sign_in_works_and_a_wrong_password_is_refused(world):
    client = client_for(world)
    refused = sign_in(client, "wrong password!!")
    assert refused.status_code == 401 and "wrong user name or password" in refused.text
    assert client.get("/").status_code == 303
    assert sign_in(client, user="mallory").status_code == 401
    accepted = sign_in(client)
    assert accepted.status_code == 303 and accepted.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "Bananas over weight" in page.text and "alice" in page.text


def test_repeated_failures_lock_the_name_for_a_while(world):
    client = client_for(world)
    for _ in range(MAX_FAILURES):
        sign_in(client, "wrong password!!")
    locked = sign_in(client)
    assert locked.status_code == 401 and "too many failed sign-ins" in locked.text


def test_posts_need_the_sessions_csrf_token(world):
    client = client_for(world)
    assert client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 400
    sign_in(client)
    client.post("/logout", data={"csrf": "forged"})
    assert client.get("/").status_code == 200  # still signed in
    client.post("/logout", data={"csrf": csrf(client, "/")})
    assert client.get("/").status_code == 303


def test_only_local_paths_are_followed_after_sign_in(world):
    client = client_for(world)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf(client),
                                           "next": "//evil.example/"})
    assert response.headers["location"] == "/"


def test_a_removed_user_is_signed_out(world):
    client = client_for(world)
    sign_in(client)
    world[1].remove("alice")
    assert client.get("/").status_code == 303


def test_every_response_forbids_foreign_content_and_caching(world):
    client = client_for(world)
    sign_in(client)
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "https://" not in page.text  # no CDN, nothing fetched from elsewhere


def test_behind_a_proxy_the_header_names_the_officer_only_from_the_proxy(world):
    via_proxy = client_for(world, proxy_header="X-Forwarded-User", trusted_proxies=parse_networks(["10.0.0.0/8"]))
    assert via_proxy.get("/", headers={"X-Forwarded-User": "bob"}).status_code == 403  # testclient is no proxy
    indexer, _ = world
    app = create_app(ConsoleConfig(MEMBER, TOPIC, Authenticator(proxy_header="X-Forwarded-User",
                                                                 trusted_proxies=parse_networks(["10.0.0.0/8"]))),
                     indexer.index, indexer)
    proxied = TestClient(app, client=("10.1.2.3", 4000), follow_redirects=False)
    page = proxied.get("/", headers={"X-Forwarded-User": "bob"})
    assert page.status_code == 200 and "bob" in page.text
    assert proxied.get("/").status_code == 401
    assert proxied.post("/login", data={"username": "alice", "password": PASSWORD}).status_code in (400, 401)


def test_the_alert_page_says_why_it_came_or_that_it_is_not_recorded(world, fed, tmp_path):
    client = client_for(world)
    sign_in(client)
    ok = next(r for r in world[0].index.search() if r.verdict.trusted)
    page = client.get(f"/record/{ok.partition}/{ok.offset}")
    assert "Not recorded" in page.text and "CSQU3054383" in page.text
    bad = next(r for r in world[0].index.search() if not r.verdict.trusted)
    page = client.get(f"/record/{bad.partition}/{bad.offset}")
    assert "containers-to-europol" in page.text and "NOT VERIFIED" in page.text and "✔ verified" not in page.text
    assert client.get("/record/9/9").status_code == 404
    assert client.get(f"/alert/{ok.message_id}").headers["location"] == f"/record/{ok.partition}/{ok.offset}"


def test_acknowledge_buttons_hand_the_acknowledgement_over(world):
    recorder = Recorder()
    client = client_for(world, acknowledger=recorder)
    sign_in(client)
    ok = next(r for r in world[0].index.search() if r.verdict.trusted)
    token = csrf(client, f"/record/{ok.partition}/{ok.offset}")
    sent = client.post(f"/record/{ok.partition}/{ok.offset}/ack",
                       data={"status": "false-positive", "note": "  cargo was bananas  ", "csrf": token})
    assert sent.status_code == 303
    assert recorder.sent == [AckRequest(ok.message_id, ok.key, AckStatus.FALSE_POSITIVE, "cargo was bananas", "alice")]
    page = client.get(f"/record/{ok.partition}/{ok.offset}")
    assert "sent (acks partition 0 offset 3)" in page.text and "false-positive" in page.text
    assert client.post(f"/record/{ok.partition}/{ok.offset}/ack",
                       data={"status": "loved-it", "csrf": token}).status_code == 400
    bad = next(r for r in world[0].index.search() if not r.verdict.trusted)
    assert client.post(f"/record/{bad.partition}/{bad.offset}/ack",
                       data={"status": "seen", "csrf": token}).status_code == 409
    assert len(recorder.sent) == 1


def test_an_acknowledgement_that_was_not_published_says_so(world):
    client = client_for(world, acknowledger=Recorder(KafkaUnavailable("no broker answered")))
    sign_in(client)
    ok = next(r for r in world[0].index.search() if r.verdict.trusted)
    token = csrf(client, f"/record/{ok.partition}/{ok.offset}")
    response = client.post(f"/record/{ok.partition}/{ok.offset}/ack", data={"status": "seen", "csrf": token})
    assert response.status_code == 502 and "not sent: no broker answered" in response.text


def test_without_an_acknowledgement_service_the_buttons_are_disabled_with_the_reason(world):
    client = client_for(world)
    sign_in(client)
    ok = next(r for r in world[0].index.search() if r.verdict.trusted)
    page = client.get(f"/record/{ok.partition}/{ok.offset}")
    assert "not configured" in page.text and "--key" in page.text and 'name="status"' not in page.text
    assert page.text.count("disabled") >= len(AckStatus)
    bad = next(r for r in world[0].index.search() if not r.verdict.trusted)
    unverified = client.get(f"/record/{bad.partition}/{bad.offset}").text
    assert "Only verified alerts can be acknowledged" in unverified and "Seen</button>" not in unverified
    token = csrf(client, f"/record/{ok.partition}/{ok.offset}")
    assert client.post(f"/record/{ok.partition}/{ok.offset}/ack",
                       data={"status": "seen", "csrf": token}).status_code == 503


def test_a_button_publishes_the_members_signed_acknowledgement_without_the_officers_name(fed, tmp_path):
    """The composition root's acknowledger (the `bus ack` service) behind the page, on a memory cluster."""
    feed = Feed(fed)
    feed.engine.create_topic(ACKS_TOPIC, partitions=6)
    feed.put(container("Bananas over weight"))
    indexer = feed.indexer(tmp_path / "i.sqlite")
    drain(indexer, 1)
    users = UsersFile(tmp_path / "users.yaml")
    users.add("alice", PASSWORD)
    acknowledger = Bus(engine=feed.engine).console_acknowledger(fed.signers[MEMBER], feed=TOPIC)
    client = TestClient(create_app(ConsoleConfig(MEMBER, TOPIC, Authenticator(users=users), session_secret="s" * 32),
                                   indexer.index, indexer, acknowledger), follow_redirects=False)
    sign_in(client)
    [ok] = indexer.index.search()
    token = csrf(client, f"/record/{ok.partition}/{ok.offset}")
    sent = client.post(f"/record/{ok.partition}/{ok.offset}/ack",
                       data={"status": "useful", "note": "matched a seizure", "csrf": token})
    assert sent.status_code == 303, sent.text
    [record] = [r for r in Bus(engine=feed.engine).read_to_end(ACKS_TOPIC) if isinstance(r, Record)]
    assert record.key == ok.key  # the alert's routing task checks that EUROPOL received it
    ack = verify_ack(record.key, record.value, text_headers(record.headers), fed.directory)
    assert (ack.member, ack.message_id, ack.status, ack.note) == (MEMBER, ok.message_id, WireStatus.USEFUL,
                                                                  "matched a seizure")
    assert record.value is not None and b"alice" not in record.value
    page = client.get(f"/record/{ok.partition}/{ok.offset}")
    assert f"acks partition {record.partition} offset {record.offset}" in page.text
    acknowledger.close()


def test_live_rows_are_those_after_the_pages_last_id_that_match_its_filters(world, fed):
    client = client_for(world)
    sign_in(client)
    last = world[0].index.last_id()
    rows = client.get(f"/rows?after={last - 2}&q=bananas")
    assert rows.headers["X-Count"] == "1" and rows.headers["X-Last-Id"] == str(last)
    assert "Bananas over weight" in rows.text
    assert client.get(f"/rows?after={last}").headers["X-Count"] == "0"


def test_the_console_refuses_another_members_signing_key_before_serving(fed, tmp_path):
    """`bus console --key`: a key the directory lists for BE-CUSTOMS would sign acknowledgements the
    router rejects; the console says so at start (exit 10), before it connects to Kafka."""
    users = UsersFile(tmp_path / "users.yaml")
    users.add("alice", PASSWORD)
    result = run_bus("console", "--member", MEMBER, "--federation", str(fed.directory_path),
                     "--authority-pub", str(fed.authority_pub), "--users", str(users.path),
                     "--key", str(fed.keys_dir / "BE-CUSTOMS.key"), "--bootstrap", "127.0.0.1:1", timeout=60)
    assert result.returncode == KeyOwnerMismatch.exit_code, result.stdout + result.stderr
    assert "BE-CUSTOMS" in result.stderr and "Traceback" not in result.stderr
