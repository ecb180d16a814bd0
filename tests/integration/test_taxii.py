"""The OASIS `taxii2-client` library reads a member's feed from `bus console --taxii`, on a real broker.

`bus publish` -> alerts.* -> `bus router run` -> the member's feed -> the console's index ->
TAXII 2.1 at /taxii2/. The module runs its own router (own group, own feed topic) and console,
so other tests on the shared broker neither see nor disturb its records. The secured broker
(SCRAM + ACLs, provisioned by `bus provision`) shows that a member's TAXII server cannot read
another member's feed: the broker refuses it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from bus.adapters.broker import free_port
from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import open_engine, wire_headers
from bus.core.sealing import seal
from bus.core.topology import feed_topic
from bus.errors import NotAuthorized
from tests.helpers import EXAMPLES, REPO, SCHEMAS, example, wait_for

MEMBER = "EUROPOL"
USER, PASSWORD = "opencti", "taxii connector password"
ALERT_EXTENSION = "extension-definition--8c1ab08e-e5fc-48d1-865a-3b920c8822de"
BATCH = 250


def container_alert(summary: str) -> dict[str, Any]:
    """The suspicious-container example as JSON, for EUROPOL, without id and time (bus publish adds them)."""
    data = json.loads((EXAMPLES / "suspicious-container.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update(release_to=[MEMBER], summary=summary, tlp="AMBER", handling_codes=["H1"])
    return data


def summaries(objects: list[dict[str, Any]]) -> list[str]:
    """The summary of every alert whose main object is in `objects`."""
    return [o["description"] for o in objects if "alert" in o.get("extensions", {}).get(ALERT_EXTENSION, {})]


def add_user(users: Path, env: dict[str, str]) -> None:
    added = subprocess.run([sys.executable, "-m", "bus", "console", "add-user", "--users", str(users),
                            "--password-stdin", USER], input=PASSWORD + "\n", env=env, capture_output=True,
                           text=True, timeout=60, cwd=REPO)
    assert added.returncode == 0, added.stderr


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def listening(url: str, proc: subprocess.Popen[Any], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(log.read_text())
    try:
        return requests.get(url + "/taxii2/", timeout=2).status_code == 401
    except requests.ConnectionError:
        return False


def start_router(fed: DemoFederation, policy: Path, work: Path, env: dict[str, str],
                 name: str) -> subprocess.Popen[Any]:
    """`bus router run` with its own group and transactional id (as tests/integration/test_console_browser.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bus", "router", "run", "--policy", str(policy), "--federation",
         str(fed.directory_path), "--authority-pub", str(fed.authority_pub), "--state-dir", str(work / "router"),
         "--router-id", fed.router_id, "--router-key", str(fed.router_key), "--group", name,
         "--transactional-prefix", name],
        env=env, stdout=subprocess.DEVNULL, stderr=(work / "router.log").open("w"), cwd=REPO)


@dataclass
class Taxii:
    url: str
    fed: DemoFederation
    work: Path
    env: dict[str, str]

    @property
    def discovery(self) -> str:
        return f"{self.url}/taxii2/"

    def server(self) -> Server:
        return Server(self.discovery, user=USER, password=PASSWORD)

    def containers(self) -> Collection:
        (root,) = self.server().api_roots
        return next(c for c in root.collections if c.title == "suspicious-container")

    def publish(self, alerts: list[dict[str, Any]], name: str) -> None:
        """One `bus publish` of every alert, as NL-CUSTOMS, in clear (the router forwards plain alerts)."""
        path = self.work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
        result = subprocess.run(
            [sys.executable, "-m", "bus", "publish", "--file", str(path), "--member", "NL-CUSTOMS",
             "--key", str(self.fed.keys_dir / "NL-CUSTOMS.key"), "--no-encrypt"],
            env=self.env, capture_output=True, text=True, timeout=180, cwd=REPO)
        assert result.returncode == 0, result.stderr

    def served(self, prefix: str) -> int:
        """How many alerts whose summary starts with `prefix` the containers collection lists."""
        envelope = self.containers().get_objects(type="grouping", limit=1000)
        return sum(1 for s in summaries(envelope.get("objects", [])) if s.startswith(prefix))


@pytest.fixture(scope="module")
def taxii(kafka, tmp_path_factory) -> Iterator[Taxii]:
    unique = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("taxii")
    fed = make_demo(work / "federation")
    feed = f"feed.taxii-{unique}"
    policy = work / "policy.yaml"
    policy.write_text(f"""\
version: "taxii-{unique}"
partners:
  - {{id: {MEMBER}, kind: eu-agency, feed: {feed}}}
rules:
  - id: containers-to-europol
    match: {{alert_types: [suspicious-container]}}
    deliver_to: [{MEMBER}]
""")
    env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap, "NO_COLOR": "1"}
    users = work / "users.yaml"
    add_user(users, env)
    procs = [start_router(fed, policy, work, env, f"taxii-{unique}")]
    try:
        engine = open_engine(kafka)
        wait_for(lambda: feed in engine.admin().list_topics(), 90, "the router to create the feed topic")
        port = free_port()
        console = subprocess.Popen(
            [sys.executable, "-m", "bus", "console", "--taxii", "--member", MEMBER, "--feed", feed,
             "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
             "--users", str(users), "--port", str(port), "--index", str(work / "index.sqlite")],
            env=env, stdout=subprocess.DEVNULL, stderr=(work / "console.log").open("w"), cwd=REPO)
        procs.append(console)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: listening(url, console, work / "console.log"), 60, "the console to listen")
        setup = Taxii(url, fed, work, env)
        setup.publish([container_alert(f"batch A #{i:03d}") for i in range(BATCH)], "batch-a")
        # The router may first work through older records of alerts.* on the shared broker.
        wait_for(lambda: setup.served("batch A") == BATCH, 180, f"the {BATCH} alerts to be served over TAXII")
        yield setup
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_the_client_discovers_the_server_and_its_api_root(taxii):
    server = taxii.server()
    assert MEMBER in server.title
    (root,) = server.api_roots
    assert server.default is root and root.url == f"{taxii.url}/taxii2/europol/"
    assert root.versions == ["application/taxii+json;version=2.1"]


def test_the_client_lists_one_read_only_collection_per_alert_type(taxii):
    (root,) = taxii.server().api_roots
    collections = root.collections
    assert [c.title for c in collections] == ["suspicious-container", "corruption-indicator", "operation-notice"]
    assert all(c.can_read and not c.can_write for c in collections)
    assert all(c.media_types == ["application/stix+json;version=2.1"] for c in collections)
    again = Collection(f"{root.url}collections/{collections[0].id}/", user=USER, password=PASSWORD)
    assert again.title == "suspicious-container"


def test_as_pages_gets_each_of_250_alerts_exactly_once(taxii):
    pages = list(as_pages(taxii.containers().get_objects, per_request=100))
    objects = [o for page in pages for o in page.get("objects", [])]
    seen = Counter(s for s in summaries(objects) if s.startswith("batch A"))
    assert set(seen) == {f"batch A #{i:03d}" for i in range(BATCH)}
    assert max(seen.values()) == 1
    assert all(len(page["objects"]) == 100 for page in pages[:-1])  # full pages: as_pages never shrinks them
    assert len(pages) >= BATCH * 5 // 100  # five objects of its own per alert, plus the definitions


def test_added_after_gives_only_what_arrived_after_it(taxii):
    containers = taxii.containers()
    manifest = [e for page in as_pages(containers.get_manifest, per_request=1000) for e in page.get("objects", [])]
    last = max(e["date_added"] for e in manifest)
    taxii.publish([container_alert(f"batch B #{i}") for i in range(5)], "batch-b")
    wait_for(lambda: taxii.served("batch B") == 5, 120, "the second batch to be served")
    after = [o for page in as_pages(containers.get_objects, per_request=100, added_after=last)
             for o in page.get("objects", [])]
    assert sorted(summaries(after)) == [f"batch B #{i}" for i in range(5)]
    assert all(not s.startswith("batch A") for s in summaries(after))


def test_without_credentials_the_server_answers_401(taxii):
    with pytest.raises(requests.HTTPError) as refused:
        _ = Server(taxii.discovery).title
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()["http_status"] == "401"
    with pytest.raises(requests.HTTPError) as wrong:
        _ = ApiRoot(f"{taxii.url}/taxii2/europol/", user=USER, password="not the password").title
    assert wrong.value.response.status_code == 401


# -- the secured broker: a member's TAXII server reads its own feed only ---------------------------

POLICY = """\
version: "taxii-acl-1"
partners:
  - {id: EUROPOL, kind: eu-agency}
  - {id: BE-CUSTOMS, kind: customs}
rules:
  - id: containers
    match: {alert_types: [suspicious-container]}
    deliver_to: [EUROPOL, BE-CUSTOMS]
"""


@dataclass
class Secured:
    bootstrap: str
    fed: DemoFederation
    work: Path
    passwords: dict[str, str]
    users: Path

    def env_as(self, user: str) -> dict[str, str]:
        return {**os.environ, "NO_COLOR": "1", "BUS_BOOTSTRAP": self.bootstrap,
                "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BUS_SASL_USERNAME": user,
                "BUS_SASL_PASSWORD": self.passwords[user]}

    def console(self, member: str, port: int, index: str) -> list[str]:
        return [sys.executable, "-m", "bus", "console", "--taxii", "--member", member,
                "--federation", str(self.fed.directory_path), "--authority-pub", str(self.fed.authority_pub),
                "--users", str(self.users), "--port", str(port), "--index", str(self.work / index)]


@pytest.fixture(scope="module")
def secured(secure_kafka, tmp_path_factory) -> Secured:
    admin, _ = secure_kafka
    work = tmp_path_factory.mktemp("taxii-acl")
    fed = make_demo(work / "federation")
    (work / "policy.yaml").write_text(POLICY)
    assert admin.sasl_password is not None
    admin_env = {**os.environ, "BUS_BOOTSTRAP": admin.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                 "BUS_SASL_USERNAME": str(admin.sasl_username),
                 "BUS_SASL_PASSWORD": admin.sasl_password.get_secret_value(), "NO_COLOR": "1"}
    provisioned = subprocess.run(
        [sys.executable, "-m", "bus", "provision", "--federation", str(fed.directory_path), "--authority-pub",
         str(fed.authority_pub), "--policy", str(work / "policy.yaml"), "--secrets", str(work / "secrets.yaml"),
         # the session's secure broker may already hold these users (another module provisioned them):
         # rotating sets passwords this module knows
         "--generate-missing", "--rotate-passwords"],
        env=admin_env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert provisioned.returncode == 0, provisioned.stderr
    passwords = yaml.safe_load((work / "secrets.yaml").read_text())["users"]
    users = work / "users.yaml"
    add_user(users, admin_env)
    producer = open_engine(admin).producer()  # as the router would forward them
    try:
        for member in ("EUROPOL", "BE-CUSTOMS"):
            alert = example("suspicious-container", producer="NL-CUSTOMS", release_to=[member],
                            summary=f"Delivered to {member} only.")
            record = seal(alert, fed.signers["NL-CUSTOMS"], SCHEMAS)
            producer.send(feed_topic(member), record.value, key=record.key,
                          headers=wire_headers(record.headers)).result(30)
    finally:
        producer.close()
    return Secured(admin.bootstrap, fed, work, passwords, users)


def test_a_members_taxii_server_cannot_read_another_members_feed(secured):
    """BE-CUSTOMS's credentials asked to serve Europol's feed: the broker refuses, nothing is served."""
    port = free_port()
    result = subprocess.run(secured.console("EUROPOL", port, "stolen.sqlite"), env=secured.env_as("be-customs"),
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == NotAuthorized.exit_code, result.stderr
    assert "feed.europol" in result.stderr and "not authori" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    with closing(sqlite3.connect(secured.work / "stolen.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_a_members_taxii_server_serves_its_own_feed_and_nothing_else(secured):
    port = free_port()
    log = secured.work / "be-console.log"
    proc = subprocess.Popen(secured.console("BE-CUSTOMS", port, "own.sqlite"), env=secured.env_as("be-customs"),
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: listening(url, proc, log), 60, "the console to listen")
        server = Server(f"{url}/taxii2/", user=USER, password=PASSWORD)
        (root,) = server.api_roots
        assert root.url.endswith("/taxii2/be-customs/")
        containers = next(c for c in root.collections if c.title == "suspicious-container")
        wait_for(lambda: summaries(containers.get_objects().get("objects", [])), 60, "BE-CUSTOMS's alert")
        assert summaries(containers.get_objects()["objects"]) == ["Delivered to BE-CUSTOMS only."]
        other = requests.get(f"{url}/taxii2/europol/collections/", auth=(USER, PASSWORD),
                             headers={"Accept": "application/taxii+json;version=2.1"}, timeout=10)
        assert other.status_code == 404 and other.json()["http_status"] == "404"
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()
