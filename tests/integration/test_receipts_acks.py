"""Receipts, acknowledgements and the audit checks on a secured broker (issue 16, issue 11).

Provisioned with the real grants, every client runs as its own SCRAM principal: the router
as `svc-router`, members as themselves, the auditor as `svc-auditor`. A member reads its own
receipts and nobody else's; `bus publish --wait` names the router's verdict; an
acknowledgement reaches the originator only from a member that received the alert; and
the audit checks refuse to report on what they may not read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from bus.adapters.broker import free_port
from bus.adapters.federation_file import (
    DemoFederation,
    load_authority_signing_key,
    load_verified_directory,
    write_directory_file,
)
from bus.adapters.kafka import wire_headers
from bus.adapters.keystore import write_new_keypair
from bus.adapters.secrets_file import SecretsFile
from bus.adapters.users_file import UsersFile
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.envelope import build_headers
from bus.core.keys import SigningKey
from bus.core.placement import partition_for
from bus.core.policy import parse_policy
from bus.core.receipts import AckStatus, sign_ack
from bus.core.sealing import SealedRecord, seal
from bus.core.signing import sign_record
from bus.core.trust import FederationDirectory, MemberKey, add_key, revoke_key, sign_directory
from bus.errors import NotAuthorized
from bus.services.router import FileSources, Router, RouterIdentity, RouterOptions
from connectors.http_ingest.auth import hash_token
from connectors.http_ingest.connector import HttpIngestConnector
from connectors.sdk.testing import running, settings_for
from tests.helpers import REPO, SCHEMAS, example, run_bus, wait_for
from tests.router_support import NEUTRAL, demo_federation, start_at_end

POLICY = {
    "version": "receipts-1",
    "partners": [{"id": p, "kind": k} for p, k in
                 [("EUROPOL", "eu-agency"), ("NL-CUSTOMS", "customs"), ("BE-CUSTOMS", "customs"),
                  ("ES-CUSTOMS", "customs")]],
    "rules": [{"id": "spain", "match": {"countries_any": ["ES"]}, "deliver_to": ["ES-CUSTOMS"]}],
}
ES = {**NEUTRAL, "countries": ["ES"]}
NOW = datetime.now(UTC).replace(microsecond=0)
CONSOLE_PASSWORD = "liaison officer password"
INGEST_TOKEN = "case-system-token-0123456789abcdef0123456789"


@dataclass
class Secured:
    admin: KafkaSettings
    fed: DemoFederation
    directory: FederationDirectory
    secrets: SecretsFile
    revoked_key: Path
    work: Path
    router: Router | None = None
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def as_user(self, user: str) -> KafkaSettings:
        password = self.secrets.password(user)
        assert password is not None, user
        return KafkaSettings(bootstrap=self.admin.bootstrap, security_protocol="SASL_PLAINTEXT",
                             sasl_username=user, sasl_password=password, engine=self.admin.engine)

    def env(self, user: str) -> dict[str, str]:
        s = self.as_user(user)
        assert s.sasl_password is not None and s.sasl_username is not None
        return {"BUS_BOOTSTRAP": s.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "BUS_SASL_USERNAME": s.sasl_username, "BUS_SASL_PASSWORD": s.sasl_password.get_secret_value()}

    @property
    def trust(self) -> list[str]:
        return ["--federation", str(self.fed.directory_path), "--authority-pub", str(self.fed.authority_pub)]

    def write(self, *records: SealedRecord, partition: int | None = None) -> list[str]:
        """Raw writes as the administrator (a member may write only its own types)."""
        producer = Bus(self.admin).engine.producer()
        try:
            for r in records:
                p = partition_for(r.key, 6) if partition is None else partition
                producer.send(r.topic, r.value, key=r.key, headers=wire_headers(r.headers), partition=p).result(30)
        finally:
            producer.close()
        return [dict(r.headers)["ce_id"].decode() for r in records]

    def receipts(self, member: str, *, expect: set[str], timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
        """Receipts of `expect` (message ids) read as `member` itself, verified."""
        found: dict[str, list[dict[str, Any]]] = {}

        def done() -> bool:
            found.clear()
            with Bus(self.as_user(member)).receipt_reader(member, self.directory) as reader:
                for record in reader.records():
                    assert record.error is None, record.error
                    if record.kind == "receipt" and record.receipt is not None:
                        value = record.receipt.value
                        found.setdefault(value["message_id"], []).append(value)
                    elif record.kind == "ack" and record.ack is not None:
                        found.setdefault(f"ack:{record.ack.message_id}", []).append(
                            {"status": record.ack.status.value, "member": record.ack.member})
            return expect <= set(found)

        wait_for(done, timeout, f"receipts of {sorted(expect - set(found))} for {member}")
        return found


def _revoked_signer(fed: DemoFederation, work: Path) -> tuple[FederationDirectory, Path]:
    """A second NL-CUSTOMS key, revoked an hour ago, signed into a new directory version."""
    key_path, _, signer = write_new_keypair(work / "revoked" / "NL-CUSTOMS.key", work / "revoked" / "NL-CUSTOMS.pub",
                                            "NL-CUSTOMS")
    authority = load_authority_signing_key(fed.authority_key)
    directory = add_key(fed.directory, "NL-CUSTOMS", MemberKey.for_public_key(signer.public, NOW - timedelta(days=2),
                                                                               NOW + timedelta(days=300)))
    directory = revoke_key(directory, "NL-CUSTOMS", signer.key_id, at=NOW - timedelta(hours=1), reason="test")
    write_directory_file(fed.directory_path, sign_directory(directory, authority))
    return load_verified_directory(fed.directory_path, fed.authority_pub), key_path


@pytest.fixture(scope="module")
def secured(secure_kafka, tmp_path_factory) -> Iterator[Secured]:
    admin, _broker = secure_kafka
    work = tmp_path_factory.mktemp("receipts")
    fed = demo_federation(work / "federation")
    directory, revoked_key = _revoked_signer(fed, work)
    policy_path = work / "policy.yaml"
    policy_path.write_text(json.dumps(POLICY))
    secrets = SecretsFile(work / "secrets.yaml")
    report = Bus(admin).provision(directory, parse_policy(POLICY), secrets, generate_missing=True,
                                  rotate_passwords=True)
    assert not report.plan.errors
    s = Secured(admin, fed, directory, SecretsFile(work / "secrets.yaml"), revoked_key, work)
    start_at_end(Bus(admin).engine, "bus-router")
    sources = FileSources(policy_path, federation=fed.directory_path, authority_pub=fed.authority_pub,
                          state_dir=work / "router")
    assert fed.router_signer is not None
    router = s.router = Bus(s.as_user("svc-router")).router(
        sources.load, RouterIdentity(fed.router_id, fed.router_signer),
        RouterOptions(state_dir=work / "router", checkpoint_interval=2.0, poll_timeout=0.2))

    def run() -> None:
        try:
            router.run()
        except BaseException as exc:
            s.errors.append(exc)

    s.thread = threading.Thread(target=run, daemon=True, name="secured-router")
    s.thread.start()
    wait_for(lambda: router._ready or s.errors, 90, "the router to hold its tasks as svc-router")
    assert not s.errors, s.errors
    yield s
    router.stop()
    s.thread.join(60)
    assert not s.errors, s.errors


def signed_junk(signer: SigningKey) -> SealedRecord:
    mid = example("corruption-indicator").header.message_id
    headers = build_headers(message_id=mid, producer=signer.member, alert_type="corruption-indicator",
                            time=datetime.now(UTC), key_id=signer.key_id)
    value = b"\xc3\x01" + bytes(8) + b"not avro"
    return SealedRecord("alerts.corruption-indicator", b"PSN-JUNK0003", value,
                        sign_record(signer, b"PSN-JUNK0003", headers, value))


def test_receipts_per_reason_go_to_their_producer_only(secured):
    s = secured
    nl = s.fed.signers["NL-CUSTOMS"]
    alert = lambda **h: example("corruption-indicator", producer="NL-CUSTOMS", **{**ES, **h})  # noqa: E731
    revoked = SigningKey.from_pem("NL-CUSTOMS", s.revoked_key.read_bytes())
    routed = seal(alert(), nl, SCHEMAS)
    cases = {
        "routed": routed,
        "key-revoked": seal(alert(), revoked, SCHEMAS),
        "stale": seal(alert(created=(NOW - timedelta(days=10)).isoformat()), nl, SCHEMAS),
        "future": seal(alert(created=(NOW + timedelta(hours=2)).isoformat()), nl, SCHEMAS),
        "expired": seal(alert(created=(NOW - timedelta(hours=2)).isoformat(),
                              expires=(NOW - timedelta(minutes=5)).isoformat()), nl, SCHEMAS),
        "bad-schema": signed_junk(nl),
        "type-not-allowed": seal(example("corruption-indicator", producer="TERMINAL-OPERATOR-X", **ES),
                                 s.fed.signers["TERMINAL-OPERATOR-X"], SCHEMAS),
    }
    ids = {label: s.write(record)[0] for label, record in cases.items()}
    [misplaced] = s.write(routed, partition=(partition_for(routed.key, 6) + 1) % 6)
    s.write(routed)  # again, where it belongs: a replay
    unproven = {
        "unknown-key": seal(alert(), SigningKey.generate("NL-CUSTOMS"), SCHEMAS),
        "key-not-owned": seal(example("corruption-indicator", producer="BE-CUSTOMS", **ES),
                              SigningKey("BE-CUSTOMS", nl.key), SCHEMAS),
    }
    unproven_ids = {label: s.write(record)[0] for label, record in unproven.items()}
    nl_receipts = s.receipts("nl-customs", expect={i for label, i in ids.items() if label != "type-not-allowed"})
    for label, mid in ids.items():
        if label == "type-not-allowed":
            continue
        got = nl_receipts[mid]
        if label == "routed":
            assert sorted((r["outcome"], r["reason"] or "") for r in got) == [
                ("rejected", "misplaced"), ("rejected", "replay"), ("routed", "")]
            [first] = [r for r in got if r["outcome"] == "routed"]
            assert first["recipients"] == ["ES-CUSTOMS"] and first["recipient_count"] == 1
        else:
            assert [(r["outcome"], r["reason"]) for r in got] == [("rejected", label)], label
    assert misplaced == ids["routed"]
    terminal = s.receipts("terminal-operator-x", expect={ids["type-not-allowed"]})
    assert terminal[ids["type-not-allowed"]][0]["reason"] == "type-not-allowed"
    assert not set(unproven_ids.values()) & set(nl_receipts)  # nothing proves who sent those
    be = Bus(s.as_user("be-customs"))
    with pytest.raises(NotAuthorized), be.receipt_reader("nl-customs", s.directory) as reader:
        reader.end()


def test_publish_wait_exits_0_when_routed_and_names_the_reason_when_rejected(secured):
    s = secured
    alert_file = s.work / "alert.json"
    alert_file.write_text(example("corruption-indicator", producer="NL-CUSTOMS", **ES).model_dump_json())
    ok = run_bus("publish", "--file", str(alert_file), "--member", "NL-CUSTOMS", "--key",
                 str(s.fed.keys_dir / "NL-CUSTOMS.key"), *s.trust, "--wait", "--timeout", "90",
                 env=s.env("nl-customs"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "routed to 1: ES-CUSTOMS" in ok.stdout
    alert_file.write_text(example("corruption-indicator", producer="NL-CUSTOMS", **ES).model_dump_json())
    bad = run_bus("publish", "--file", str(alert_file), "--member", "NL-CUSTOMS", "--key", str(s.revoked_key),
                  *s.trust, "--wait", "--timeout", "90", env=s.env("nl-customs"))
    assert bad.returncode == 8, bad.stdout + bad.stderr
    assert "key-revoked" in bad.stdout and "key-revoked" in bad.stderr


def test_an_acknowledgement_reaches_the_originator_only_from_a_recipient(secured):
    s = secured
    [mid] = s.write(seal(example("corruption-indicator", producer="NL-CUSTOMS", **ES),
                         s.fed.signers["NL-CUSTOMS"], SCHEMAS))
    s.receipts("nl-customs", expect={mid})  # routed to ES-CUSTOMS
    acked = run_bus("ack", mid, "--status", "useful", "--note", "matched a case", "--member", "ES-CUSTOMS",
                    "--key", str(s.fed.keys_dir / "ES-CUSTOMS.key"), env=s.env("es-customs"))
    assert acked.returncode == 0, acked.stdout + acked.stderr
    # BE-CUSTOMS never received it: its acknowledgement is refused (it learns why; NL-CUSTOMS nothing)
    key = seal(example("corruption-indicator", producer="NL-CUSTOMS", **ES), s.fed.signers["NL-CUSTOMS"],
               SCHEMAS).key
    value, headers = sign_ack(s.fed.signers["BE-CUSTOMS"], key, mid, AckStatus.SEEN, None, datetime.now(UTC))
    be_ack_id = dict(headers)["ce_id"].decode()
    forged_value, forged_headers = sign_ack(s.fed.signers["BE-CUSTOMS"], key, mid, AckStatus.FALSE_POSITIVE, None,
                                            datetime.now(UTC))
    forged_headers = [(k, v.replace(b"BE-CUSTOMS", b"ES-CUSTOMS") if k == "ce_source" else v)
                      for k, v in forged_headers]
    producer = Bus(s.as_user("be-customs")).engine.producer()
    try:
        for v, h in ((value, headers), (forged_value, forged_headers)):
            producer.send("acks", v, key=key, headers=wire_headers(h)).result(30)
    finally:
        producer.close()
    nl = s.receipts("nl-customs", expect={f"ack:{mid}"})
    assert nl[f"ack:{mid}"] == [{"status": "useful", "member": "ES-CUSTOMS"}]
    be = s.receipts("be-customs", expect={be_ack_id})
    assert [(r["record"], r["reason"]) for r in be[be_ack_id]] == [("ack", "not-received")]
    es = s.receipts("es-customs", expect=set())
    assert all(r.get("reason") != "key-not-owned-by-producer" for rs in es.values() for r in rs)


def test_an_officer_clicking_useful_in_the_console_acknowledges_to_the_originator(secured, browser):
    """`bus console --key` as ES-CUSTOMS (its own principal): the page's button publishes the signed
    acknowledgement, the router checks ES-CUSTOMS received the alert and NL-CUSTOMS reads it."""
    s = secured
    [mid] = s.write(seal(example("corruption-indicator", producer="NL-CUSTOMS", **ES,
                                 summary="Reefer bay plan looked up by a clerk on leave."),
                         s.fed.signers["NL-CUSTOMS"], SCHEMAS))
    users = s.work / "console-users.yaml"
    UsersFile(users).add("officer", CONSOLE_PASSWORD)
    port = free_port()
    log_path = s.work / "console-acks.log"
    with log_path.open("w") as log:
        console = subprocess.Popen(
            [sys.executable, "-m", "bus", "console", "--member", "ES-CUSTOMS", *s.trust,
             "--key", str(s.fed.keys_dir / "ES-CUSTOMS.key"), "--users", str(users), "--port", str(port),
             "--index", str(s.work / "console-acks.sqlite")],
            env={**os.environ, "NO_COLOR": "1", **s.env("es-customs")}, stdout=subprocess.DEVNULL, stderr=log,
            cwd=REPO)
    context = browser.new_context()
    try:
        page = context.new_page()

        def listening() -> bool:
            assert console.poll() is None, log_path.read_text()
            try:
                return page.goto(f"http://127.0.0.1:{port}/login").ok
            except PlaywrightError:
                return False

        wait_for(listening, 60, "the console to listen")
        page.fill("input[name=username]", "officer")
        page.fill("input[name=password]", CONSOLE_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#feed-rows")).to_be_attached()
        # the router delivers it to feed.es-customs; the console indexes it; its page opens
        wait_for(lambda: page.goto(f"http://127.0.0.1:{port}/alert/{mid}").ok, 90, "the alert in the console")
        page.fill("textarea[name=note]", "matched an open case")
        page.click("button.ack-useful")
        expect(page.locator("#flash")).to_contain_text("sent")
        expect(page.locator("#ack-log")).to_contain_text("by officer")
    finally:
        context.close()
        console.send_signal(signal.SIGTERM)
        try:
            console.wait(timeout=30)
        except subprocess.TimeoutExpired:
            console.kill()
    assert console.returncode == 0, log_path.read_text()
    nl = s.receipts("nl-customs", expect={f"ack:{mid}"})
    assert nl[f"ack:{mid}"] == [{"status": "useful", "member": "ES-CUSTOMS"}]
    with Bus(s.as_user("nl-customs")).receipt_reader("nl-customs", s.directory) as reader:
        [ack] = [r.ack for r in reader.records() if r.ack is not None and r.ack.message_id == mid]
    assert ack.note == "matched an open case"  # the officer's name stays at ES-CUSTOMS (its console log)
    assert '"officer": "officer"' in log_path.read_text()


def test_http_ingest_answers_what_became_of_each_alert(secured, tmp_path):
    """http-ingest as nl-customs, following receipts.nl-customs: an alert goes from pending (or
    already routed) to routed, with its recipient; a stale one, which the ingest takes but the
    router refuses, to rejected with its reason."""
    s = secured
    kafka = s.as_user("nl-customs")
    assert kafka.sasl_password is not None
    config = {
        "member": "NL-CUSTOMS", "key_file": str(s.fed.keys_dir / "NL-CUSTOMS.key"),
        "kafka": {"bootstrap": kafka.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                  "sasl_username": "nl-customs", "sasl_password": kafka.sasl_password.get_secret_value()},
        "health": {"host": "127.0.0.1", "port": 0},
        "publish": {"connect_timeout_s": 5, "ack_timeout_s": 20, "federation": str(s.fed.directory_path),
                    "authority_pub": str(s.fed.authority_pub)},
        "ingest": {"host": "127.0.0.1", "port": 0, "systems": [
            {"name": "case-system", "token_sha256": hash_token(INGEST_TOKEN), "alert_types": ["*"]}]},
    }
    settings = settings_for(HttpIngestConnector, tmp_path / "ingest.yaml", config)
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    fresh = json.loads(example("corruption-indicator", producer="NL-CUSTOMS", **ES).model_dump_json())
    stale = json.loads(example("corruption-indicator", producer="NL-CUSTOMS", **{
        **ES, "created": (NOW - timedelta(days=10)).isoformat()}).model_dump_json())
    with running(HttpIngestConnector, settings) as runtime, \
            httpx.Client(base_url="http://{}:{}".format(*runtime.connector.address), timeout=30) as client:
        follower = runtime.services.receipts
        assert follower is not None
        wait_for(follower.following.is_set, 60, "the ingest to follow receipts.nl-customs")
        handed: list[Any] = []
        assert runtime.services.on_receipt(handed.append)
        ids = {}
        for name, alert in (("fresh", fresh), ("stale", stale)):
            posted = client.post("/v1/alerts/corruption-indicator", json=alert, headers=auth)
            assert posted.status_code == 202, posted.text
            ids[name] = posted.json()["message_id"]
        first = client.get(f"/v1/alerts/{ids['fresh']}", headers=auth)
        assert first.status_code == 200 and first.json()["status"] in ("pending", "routed"), first.text

        def status_of(name: str) -> dict[str, Any]:
            answer = client.get(f"/v1/alerts/{ids[name]}", headers=auth)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        wait_for(lambda: status_of("fresh")["status"] == "routed", 90, "the router's receipt of the alert")
        wait_for(lambda: status_of("stale")["status"] == "rejected", 90, "the router's receipt of the stale alert")
        routed, rejected = status_of("fresh"), status_of("stale")
        metrics = httpx.get("http://{}:{}/metrics".format(*runtime.health_address)).text
    assert (routed["recipient_count"], routed["recipients"]) == (1, ["ES-CUSTOMS"])
    assert routed["policy_version"].startswith(POLICY["version"])
    assert rejected["reason"] == "stale" and rejected["detail"]
    assert 'bus_connector_alerts_rejected_total{connector="http-ingest",reason="stale"} 1.0' in metrics
    assert sorted((r.status.message_id, r.status.state.value) for r in handed) == sorted(
        [(ids["fresh"], "routed"), (ids["stale"], "rejected")])


def test_audit_checks_refuse_to_report_what_they_cannot_read_and_pass_for_who_can(secured):
    s = secured
    for command in (["audit", "verify", *s.trust], ["audit", "tail"]):
        denied = run_bus(*command, env=s.env("nl-customs"))
        assert denied.returncode == 5, denied.stdout + denied.stderr
        assert "not authorised to read audit as nl-customs" in denied.stderr
        assert "intact" not in denied.stdout
    router = s.router
    assert router is not None
    wait_for(lambda: all(not t.segment for t in router.tasks.values()), 30, "the router to checkpoint")
    auditor = run_bus("audit", "verify", *s.trust, env=s.env("svc-auditor"))
    assert auditor.returncode == 0, auditor.stdout + auditor.stderr
    member = run_bus("audit", "verify", "--member", "NL-CUSTOMS", *s.trust, env=s.env("nl-customs"))
    assert member.returncode == 0, member.stdout + member.stderr
    assert "proven against signed checkpoints" in member.stdout
