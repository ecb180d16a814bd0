"""The liaison officer's console in a real browser, on a real broker with a real router.

`bus publish` -> alerts.* -> `bus router run` -> the member's feed -> `bus console` -> Chromium.
The module runs its own router (own group, own feed topic) and console processes, so other
tests on the shared broker neither see nor disturb its records.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from bus.adapters.broker import free_port
from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import Record, open_engine, wire_headers
from bus.adapters.kafka.reading import read_to_end
from bus.core.sealing import seal
from bus.services.feed_verdicts import route_rules
from tests.helpers import EXAMPLES, REPO, SCHEMAS, example, wait_for
from tests.router_support import session_router

MEMBER = "EUROPOL"
PASSWORD = "liaison officer password"
DOCS_SCREENSHOT = REPO / "docs" / "images" / "console.png"
SCREENSHOT = REPO / "var" / "test-reports" / "console.png"
"""Where each run puts its picture; `BUS_UPDATE_SCREENSHOT=1` writes README's picture instead,
so a test run leaves the checkout clean."""
TLP_RED = "rgb(255, 43, 43)"


@dataclass
class Console:
    url: str
    feed: str
    fed: DemoFederation
    work: Path
    env: dict[str, str]
    kafka: Any

    def publish(self, producer: str, alerts: list[dict[str, Any]], name: str) -> None:
        """`bus publish` as `producer` (in clear: the router under test forwards plain alerts)."""
        path = self.work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
        result = subprocess.run(
            [sys.executable, "-m", "bus", "publish", "--file", str(path), "--member", producer,
             "--key", str(self.fed.keys_dir / f"{producer}.key"), "--no-encrypt"],
            env=self.env, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stderr

    def indexed(self) -> int:
        """Records in the console's feed index (read-only; SQLite lets a reader in beside the writer)."""
        with closing(sqlite3.connect(f"file:{self.work / 'index.sqlite'}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM records").fetchone()[0])


def alert_json(name: str, **header: Any) -> dict[str, Any]:
    """An example alert as JSON with header fields replaced (fresh id and creation time)."""
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    body = header.pop("body", {})
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update({"release_to": [MEMBER]}, **header)
    data.update(body)
    return data


SEED = {
    "NL-CUSTOMS": [
        alert_json("suspicious-container", tlp="AMBER", handling_codes=["H1"], ports=["NLRTM"], countries=["NL"],
                   summary="Reefer of bananas from Guayaquil, 1,840 kg over weight."),
        # Three days old: the demo directory lists NL-CUSTOMS's current key since 30 days ago.
        alert_json("suspicious-container", tlp="AMBER", ports=["DEHAM"], countries=["DE"],
                   created=(datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   summary="Older alert about a coffee shipment scanned in Hamburg.",
                   body={"container_number": "TGHU5129030"}),
    ],
    "BE-CUSTOMS": [alert_json("corruption-indicator", tlp="GREEN", handling_codes=["H0"], h3_conditions=None,
                              ports=["BEANR"], countries=["BE"],
                              summary="Planning account looked up reefers outside its shift.")],
    "ES-CUSTOMS": [alert_json("operation-notice", summary="Controlled delivery from Algeciras to Hamburg.")],
    "DE-CUSTOMS": [
        alert_json("suspicious-container", tlp="RED", handling_codes=["H3"], ports=["DEHAM"], countries=["DE"],
                   h3_conditions="No operational action without prior consultation of DE-CUSTOMS (Hamburg).",
                   summary="Zebrafish aquarium shipment hides cocaine in the filter units.",
                   body={"container_number": "MSKU9070323", "vessel_imo": "9074729", "port_of_discharge": "DEHAM"}),
    ],
}


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/login", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def console(kafka, tmp_path_factory, unique_module) -> Iterator[Console]:
    work = tmp_path_factory.mktemp("console")
    fed = make_demo(work / "federation", router_signer=session_router())  # the session's one router identity
    feed = f"feed.console-{unique_module}"
    policy = work / "policy.yaml"
    policy.write_text(f"""\
version: "console-{unique_module}"
partners:
  - {{id: {MEMBER}, kind: eu-agency, feed: {feed}}}
rules:
  - id: everything-to-europol
    match: {{alert_types: [suspicious-container, corruption-indicator, operation-notice]}}
    deliver_to: [{MEMBER}]
""")
    env = {**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap, "NO_COLOR": "1"}
    users = work / "users.yaml"
    added = subprocess.run([sys.executable, "-m", "bus", "console", "add-user", "--users", str(users),
                            "--password-stdin", "officer"], input=PASSWORD + "\n", env=env, capture_output=True,
                           text=True, timeout=60, cwd=REPO)
    assert added.returncode == 0, added.stderr
    router = subprocess.Popen(
        [sys.executable, "-m", "bus", "router", "run", "--policy", str(policy), "--federation",
         str(fed.directory_path), "--authority-pub", str(fed.authority_pub), "--state-dir", str(work / "router"),
         "--router-id", fed.router_id, "--router-key", str(fed.router_key), "--group", f"console-{unique_module}"],
        env=env, stdout=subprocess.DEVNULL, stderr=(work / "router.log").open("w"), text=True, cwd=REPO)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = open_engine(kafka)
    procs = [router]
    try:
        wait_for(lambda: feed in engine.admin().list_topics(), 90, "the router to create the feed topic")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bus", "console", "--member", MEMBER, "--feed", feed,
             "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
             "--decrypt-key", str(fed.keys_dir / f"{MEMBER}.enc.key"), "--users", str(users),
             "--port", str(port), "--index", str(work / "index.sqlite")],
            env=env, stdout=subprocess.DEVNULL, stderr=(work / "console.log").open("w"), text=True, cwd=REPO)
        procs.append(proc)
        wait_for(lambda: _up(url) or proc.poll() is not None, 60, "the console to listen")
        assert proc.poll() is None, (work / "console.log").read_text()
        env_console = Console(url, feed, fed, work, env, kafka)
        for producer, alerts in SEED.items():
            env_console.publish(producer, alerts, f"seed-{producer}")
        seeded = sum(len(a) for a in SEED.values())
        # The router may first work through older records of alerts.* on the shared broker.
        wait_for(lambda: env_console.indexed() >= seeded, 120, "the seeded alerts to reach the console")
        yield env_console
    finally:
        for p in reversed(procs):
            _stop(p)


@pytest.fixture(scope="module")
def unique_module() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def sign_in(page: Page, console: Console, password: str = PASSWORD) -> None:
    """Sign in from the login page; with the right password, wait until the feed page is there."""
    page.goto(console.url + "/")
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    if password == PASSWORD:
        expect(page.locator("#feed-rows")).to_be_attached()
        page.wait_for_load_state()


def rows(page: Page) -> Any:
    return page.locator("#feed-rows tr.alert-row")


# -- the tests, in the order an officer would meet these things ---------------------------------


def test_sign_in_works_and_a_wrong_password_is_refused(page, console):
    sign_in(page, console, "not the password at all")
    expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    assert "/login" in page.url
    sign_in(page, console)
    expect(page.locator("#feed-rows")).to_be_attached()
    expect(page.locator(".top .officer")).to_have_text("officer")
    expect(page.locator("#feed-status")).to_have_class("feed-status state-live", timeout=30_000)


def test_an_alert_published_with_bus_publish_appears_within_2_s(page, console):
    sign_in(page, console)
    expect(page.locator("#feed-status")).to_have_class("feed-status state-live", timeout=30_000)
    before = rows(page).count()
    console.publish("NL-CUSTOMS", [alert_json("suspicious-container", summary="Live arrival: kiwi reefer from Callao.",
                                              body={"container_number": "MSCU7482106"})], "live")
    # bus publish has returned: the alert is in Kafka. No reload from here on.
    expect(rows(page).filter(has_text="Live arrival: kiwi reefer")).to_be_visible(timeout=2_000)
    assert rows(page).count() == before + 1
    assert rows(page).first.get_attribute("class") and "row-new" in str(rows(page).first.get_attribute("class"))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("#f-type", "corruption-indicator", "Planning account looked up reefers"),
    ("#f-tlp", "GREEN", "Planning account looked up reefers"),
    ("#f-handling", "H3", "Zebrafish aquarium"),
    ("#f-country", "NL", "Reefer of bananas"),
    ("#f-port", "ESALG", "Controlled delivery from Algeciras"),
    ("#f-producer", "DE-CUSTOMS", "Zebrafish aquarium"),
])
def test_each_filter_narrows_the_list(page, console, field, value, expected):
    sign_in(page, console)
    total = rows(page).count()
    page.select_option(field, value)
    page.click("#apply")
    expect(rows(page).filter(has_text=expected)).to_be_visible()
    narrowed = rows(page).count()
    assert 0 < narrowed < total
    column = {"#f-type": ".c-type", "#f-producer": ".c-producer"}.get(field)
    if column:
        assert set(rows(page).locator(column).all_inner_texts()) == {value}
    if field == "#f-tlp":
        assert set(rows(page).locator(".tlp").all_inner_texts()) == {f"TLP:{value}"}


def test_the_time_range_filter_narrows_the_list(page, console):
    sign_in(page, console)
    total = rows(page).count()
    today = datetime.now(UTC).date()
    page.fill("#f-from", today.isoformat())
    page.click("#apply")
    expect(rows(page).filter(has_text="Older alert about a coffee shipment")).to_have_count(0)
    assert 0 < rows(page).count() < total
    page.goto(console.url + f"/?to={(today - timedelta(days=1)).isoformat()}")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Older alert about a coffee shipment")


def test_search_finds_an_alert_by_container_number_and_by_a_word_of_its_summary(page, console):
    sign_in(page, console)
    page.fill("#q", "MSKU9070323")
    page.press("#q", "Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Zebrafish aquarium")
    page.fill("#q", "zebrafish")
    page.press("#q", "Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("MSKU9070323")
    page.fill("#q", "imo:9074729")
    page.press("#q", "Enter")
    expect(rows(page).filter(has_text="MSKU9070323")).to_be_visible()


def test_a_tlp_red_alert_is_shown_red_with_its_handling_codes(page, console):
    sign_in(page, console)
    row = rows(page).filter(has_text="Zebrafish aquarium")
    tlp = row.locator(".tlp")
    expect(tlp).to_have_text("TLP:RED")
    expect(tlp).to_have_css("color", TLP_RED)
    expect(tlp).to_have_css("background-color", "rgb(0, 0, 0)")
    expect(row.locator(".c-tlp .handling")).to_have_text("H3")
    expect(row.locator(".h3")).to_contain_text("No operational action without prior consultation of DE-CUSTOMS")
    row.locator(".c-summary a").click()
    expect(page.locator(".record-head .tlp")).to_have_css("color", TLP_RED)
    expect(page.locator(".h3-big")).to_contain_text("prior consultation of DE-CUSTOMS")
    # "Why you received this" shows the router's bus_route_rule header of that very record, if it has one.
    (forwarded,) = [r for r in read_to_end(open_engine(console.kafka), console.feed)
                    if isinstance(r, Record) and r.key == b"MSKU9070323"]
    rules = route_rules(forwarded.headers)
    if rules:
        expect(page.locator("#why code.rule")).to_have_text(list(rules))
    else:
        expect(page.locator("#why-not-recorded")).to_be_visible()
    expect(page.locator("#related")).to_contain_text("imo 9074729")  # same vessel as the other reefers
    expect(page.locator(".record-head .badge")).to_have_text("✔ verified")


def test_a_record_that_fails_verification_is_flagged_and_never_shown_as_verified(page, console):
    sign_in(page, console)
    expect(page.locator("#feed-status")).to_have_class("feed-status state-live", timeout=30_000)
    forged = example("suspicious-container", producer="NL-CUSTOMS", release_to=[MEMBER],
                     summary="Forged alert claiming to come from Dutch customs.")
    record = seal(forged, console.fed.signers["NL-CUSTOMS"], SCHEMAS)
    value = record.value[:-1] + bytes([record.value[-1] ^ 1])  # one bit flipped after signing
    producer = open_engine(console.kafka).producer()
    try:
        producer.send(console.feed, value, key=record.key, headers=wire_headers(record.headers)).result(30)
    finally:
        producer.close()
    row = rows(page).filter(has_text=str(forged.header.message_id))
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator(".badge")).to_have_text("✘ NOT VERIFIED: bad-signature")
    assert "row-failed" in str(row.get_attribute("class"))
    expect(row.locator(".badge-ok")).to_have_count(0)
    expect(row).not_to_contain_text("Forged alert claiming")  # its summary is not shown as a fact
    row.locator(".c-summary a").click()
    expect(page.locator("#not-verified")).to_contain_text("failed verification (bad-signature)")
    expect(page.locator(".badge-ok")).to_have_count(0)
    expect(page.locator("#acknowledge")).not_to_contain_text("Seen")


def test_screenshot_of_the_main_page(page, console):
    """The picture in README.md, taken from the live console with this module's alerts
    (`BUS_UPDATE_SCREENSHOT=1 pytest -k screenshot` refreshes docs/images/console.png)."""
    sign_in(page, console)
    expect(page.locator("#feed-status")).to_have_class("feed-status state-live", timeout=30_000)
    expect(rows(page).first).to_be_visible()
    target = DOCS_SCREENSHOT if os.environ.get("BUS_UPDATE_SCREENSHOT") == "1" else SCREENSHOT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
