"""The console reads as the member's own principal: the secured broker decides what it may show.

Provisioned with the real `bus provision`, as the ACL matrix is: each member may read
its own feed only. A console given one member's credentials and asked for another's
feed is refused by the broker and says so; given its own, it serves it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

from bus.adapters.broker import free_port
from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import open_engine, wire_headers
from bus.config import KafkaSettings
from bus.core.sealing import seal
from bus.core.topology import feed_topic
from bus.errors import NotAuthorized
from tests.helpers import REPO, SCHEMAS, example, run_bus, wait_for

POLICY = """\
version: "console-acl-1"
partners:
  - {id: EUROPOL, kind: eu-agency}
  - {id: BE-CUSTOMS, kind: customs}
rules:
  - id: containers
    match: {alert_types: [suspicious-container]}
    deliver_to: [EUROPOL, BE-CUSTOMS]
"""
PASSWORD = "liaison officer password"


@dataclass
class Secured:
    admin: KafkaSettings
    fed: DemoFederation
    work: Path
    passwords: dict[str, str]
    users: Path

    def env_as(self, user: str) -> dict[str, str]:
        return {**os.environ, "NO_COLOR": "1", "BUS_BOOTSTRAP": self.admin.bootstrap,
                "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BUS_SASL_USERNAME": user,
                "BUS_SASL_PASSWORD": self.passwords[user]}

    def console(self, member: str, user: str, port: int, *, index: str) -> list[str]:
        return [sys.executable, "-m", "bus", "console", "--member", member,
                "--federation", str(self.fed.directory_path), "--authority-pub", str(self.fed.authority_pub),
                "--users", str(self.users), "--port", str(port), "--index", str(self.work / index)]


@pytest.fixture(scope="module")
def secured(secure_kafka, tmp_path_factory) -> Secured:
    admin, _ = secure_kafka
    work = tmp_path_factory.mktemp("console-acl")
    fed = make_demo(work / "federation")
    (work / "policy.yaml").write_text(POLICY)
    assert admin.sasl_password is not None
    admin_env = {"BUS_BOOTSTRAP": admin.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                 "BUS_SASL_USERNAME": str(admin.sasl_username),
                 "BUS_SASL_PASSWORD": admin.sasl_password.get_secret_value()}
    run_bus("provision", "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
            "--policy", str(work / "policy.yaml"), "--secrets", str(work / "secrets.yaml"), "--generate-missing",
            # the session's secure broker may already hold these users from another module's run:
            # rotating sets passwords this module knows
            "--rotate-passwords", env=admin_env, check=True)
    passwords = yaml.safe_load((work / "secrets.yaml").read_text())["users"]
    users = work / "users.yaml"
    added = subprocess.run([sys.executable, "-m", "bus", "console", "add-user", "--users", str(users),
                            "--password-stdin", "officer"], input=PASSWORD + "\n", capture_output=True, text=True,
                           timeout=60, cwd=REPO)
    assert added.returncode == 0, added.stderr
    return Secured(admin, fed, work, passwords, users)


def test_a_members_console_cannot_show_another_members_feed(secured):
    """BE-CUSTOMS's credentials, asked to serve Europol's feed: the broker refuses, the console says so."""
    result = subprocess.run(secured.console("EUROPOL", "be-customs", free_port(), index="stolen.sqlite"),
                            env=secured.env_as("be-customs"), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == NotAuthorized.exit_code, result.stderr
    assert "feed.europol" in result.stderr and "not authori" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert secured.passwords["be-customs"] not in result.stdout + result.stderr


def test_a_members_console_serves_its_own_feed(secured, browser):
    alert = example("suspicious-container", producer="NL-CUSTOMS", release_to=["BE-CUSTOMS"],
                    summary="Delivered to Belgian customs on a secured broker.")
    record = seal(alert, secured.fed.signers["NL-CUSTOMS"], SCHEMAS)
    producer = open_engine(secured.admin).producer()  # as the router would forward it
    try:
        producer.send(feed_topic("BE-CUSTOMS"), record.value, key=record.key,
                      headers=wire_headers(record.headers)).result(30)
    finally:
        producer.close()
    port = free_port()
    log = (secured.work / "console.log").open("w")
    proc = subprocess.Popen(secured.console("BE-CUSTOMS", "be-customs", port, index="own.sqlite"),
                            env=secured.env_as("be-customs"), stdout=subprocess.DEVNULL, stderr=log, cwd=REPO)
    context = browser.new_context()
    try:
        page = context.new_page()

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError((secured.work / "console.log").read_text())
            try:
                page.goto(f"http://127.0.0.1:{port}/login")
                return True
            except Exception:
                return False

        wait_for(listening, 60, "the console to listen")
        page.fill("input[name=username]", "officer")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#feed-rows tr.alert-row").filter(has_text="Delivered to Belgian customs")).to_be_visible(
            timeout=30_000)
        expect(page.locator(".top .member")).to_have_text("BE-CUSTOMS")
    finally:
        context.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert proc.returncode == 0
