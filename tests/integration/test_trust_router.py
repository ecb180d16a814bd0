"""The federation directory in force on a real broker: every reject reason, rotation,
revocation, tampering and rollback, and a live reload under traffic."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bus.adapters.federation_file import generate_authority_key, write_directory_file
from bus.adapters.kafka import open_engine
from bus.adapters.private_file import write_private
from bus.core.envelope import build_headers
from bus.core.keys import SigningKey
from bus.core.sealing import SealedRecord, seal
from bus.core.signing import sign_record
from bus.core.trust import FederationDirectory, FederationRouter, Member, MemberKey, add_key, sign_directory
from bus.errors import BusError
from bus.services.router import FileSources, Router, RouterIdentity, RouterOptions
from tests.helpers import SCHEMAS, StreamLines, example, wait_for
from tests.router_support import ensure_router_topics, read, route, send_all, session_router, start_at_end

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
ALL = ("suspicious-container", "corruption-indicator", "operation-notice")


def iso(dt: datetime) -> str:
    return dt.isoformat()


class Federation:
    """Keys and a signed directory written to disk, as an operator would have them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        _, self.authority_pub, self.authority = generate_authority_key(base)
        self.path = base / "federation.yaml"
        self.nl_old, self.nl_new = SigningKey.generate("NL-CUSTOMS"), SigningKey.generate("NL-CUSTOMS")
        self.be = SigningKey.generate("BE-FEDPOL")
        self.be_revoked = SigningKey.generate("BE-FEDPOL")
        self.de_future = SigningKey.generate("DE-CUSTOMS")
        self.port = SigningKey.generate("PORT-ROTTERDAM")
        self.europol = SigningKey.generate("EUROPOL")
        members = [
            Member(id="NL-CUSTOMS", name="Douane", country="NL", kind="customs", may_publish=ALL, keys=(
                MemberKey.for_public_key(self.nl_old.public, NOW - 30 * DAY, NOW - 2 * DAY),
                MemberKey.for_public_key(self.nl_new.public, NOW - 5 * DAY, NOW + 365 * DAY),
            )),
            Member(id="BE-FEDPOL", name="Federale Politie", country="BE", kind="police", may_publish=ALL, keys=(
                MemberKey.for_public_key(self.be.public, NOW - 30 * DAY, NOW + 365 * DAY),
                MemberKey(key_id=self.be_revoked.key_id, public_key=self.be_revoked.public.to_raw_b64(),
                          not_before=NOW - 30 * DAY, not_after=NOW + 365 * DAY,
                          revoked_at=NOW - 2 * DAY, revocation_reason="laptop stolen"),
            )),
            Member(id="DE-CUSTOMS", name="Zoll", country="DE", kind="customs", may_publish=ALL, keys=(
                MemberKey.for_public_key(self.de_future.public, NOW + DAY, NOW + 365 * DAY),
            )),
            Member(id="PORT-ROTTERDAM", name="Port of Rotterdam", country="NL", kind="port-authority",
                   may_publish=("suspicious-container",), keys=(
                       MemberKey.for_public_key(self.port.public, NOW - 30 * DAY, NOW + 365 * DAY),)),
            Member(id="EUROPOL", name="Europol", country="EU", kind="eu-agency", may_publish=ALL, keys=(
                MemberKey.for_public_key(self.europol.public, NOW - 30 * DAY, NOW + 365 * DAY),)),
        ]
        self.router = session_router()
        self.router_key = base / "router.key"
        write_private(self.router_key, self.router.to_pem())
        routers = (FederationRouter(id="EPA-ROUTER-1", name="test router", keys=(
            MemberKey.for_public_key(self.router.public, NOW - 30 * DAY, NOW + 365 * DAY),)),)
        self.directory = FederationDirectory(federation_id="EPA-TEST", name="test", version=1, issued_at=NOW,
                                             members=tuple(members), routers=routers)
        self.write(self.directory)

    def write(self, directory: FederationDirectory) -> None:
        self.directory = directory
        write_directory_file(self.path, sign_directory(directory, self.authority))


def write_policy(path: Path, suffix: str) -> str:
    feed = f"feed.trust{suffix}.europol"
    path.write_text(yaml.safe_dump({
        "version": f"trust-{suffix}",
        "partners": [{"id": "EUROPOL", "kind": "eu-agency", "feed": feed},
                     {"id": "NL-POLICE", "kind": "police", "feed": f"feed.trust{suffix}.nl-police"}],
        "rules": [{"id": "everything", "match": {}, "deliver_to": ["EUROPOL", "NL-POLICE"]}],
    }))
    return f"feed.trust{suffix}.nl-police"


@pytest.fixture(scope="module")
def setup(kafka, tmp_path_factory):
    base = tmp_path_factory.mktemp("trust")
    fed = Federation(base)
    suffix = os.urandom(3).hex()
    feed = write_policy(base / "policy.yaml", suffix)
    engine = open_engine(kafka)
    ensure_router_topics(engine)
    return {"base": base, "fed": fed, "suffix": suffix, "feed": feed, "engine": engine}


def make_router(setup, name: str, *, group: str | None = None, state: str | None = None, **options) -> Router:
    fed: Federation = setup["fed"]
    group = group or f"trust-{name}"
    state_dir = setup["base"] / f"state-{state or name}"
    sources = FileSources(setup["base"] / "policy.yaml", federation=fed.path, authority_pub=fed.authority_pub,
                          state_dir=state_dir)
    if group == f"trust-{name}":
        start_at_end(setup["engine"], group)
    return Router(setup["engine"], sources.load, RouterIdentity("EPA-ROUTER-1", fed.router),
                  RouterOptions(state_dir=state_dir, group_id=group, **options), changed=sources.changed)


def feed_ids(setup) -> Counter:
    return Counter((dict(m.headers).get(b"ce_id") or b"").decode() for m in read(setup["engine"], setup["feed"]))


def alert(producer: str, kind: str = "corruption-indicator", **header):
    return example(kind, producer=producer, **header)


def ce_id(record: SealedRecord) -> str:
    return dict(record.headers)["ce_id"].decode()


def signed_junk(signer: SigningKey) -> SealedRecord:
    headers = build_headers(message_id=alert(signer.member).header.message_id, producer=signer.member,
                            alert_type="corruption-indicator", time=NOW, key_id=signer.key_id)
    value = b"\xc3\x01" + bytes(8) + b"garbage"
    return SealedRecord("alerts.corruption-indicator", b"PSN-JUNK0002", value,
                        sign_record(signer, b"PSN-JUNK0002", headers, value))


@pytest.fixture(scope="module")
def outcomes(kafka, setup):
    """Publish one record per situation, route once; map label -> (outcome, reason)."""
    router = make_router(setup, f"reasons-{setup['suffix']}")
    fed: Federation = setup["fed"]
    impostor = SigningKey("BE-FEDPOL", fed.nl_new.key)  # NL-CUSTOMS's key claiming to be BE-FEDPOL
    tampered = seal(alert("BE-FEDPOL"), fed.be, SCHEMAS)
    flipped = bytearray(tampered.value)
    flipped[-2] ^= 1
    replayed = seal(alert("EUROPOL"), fed.europol, SCHEMAS)
    records = {
        "rotation: old key in overlap": seal(alert("NL-CUSTOMS", created=iso(NOW - 3 * DAY)), fed.nl_old, SCHEMAS),
        "rotation: new key in overlap": seal(alert("NL-CUSTOMS", created=iso(NOW - 3 * DAY)), fed.nl_new, SCHEMAS),
        "rotation: old key after expiry": seal(alert("NL-CUSTOMS", created=iso(NOW - DAY)), fed.nl_old, SCHEMAS),
        "rotation: new key after expiry": seal(alert("NL-CUSTOMS"), fed.nl_new, SCHEMAS),
        "revocation: created before": seal(alert("BE-FEDPOL", created=iso(NOW - 3 * DAY)), fed.be_revoked, SCHEMAS),
        "revocation: created after": seal(alert("BE-FEDPOL", created=iso(NOW - DAY)), fed.be_revoked, SCHEMAS),
        "unknown key": seal(alert("BE-FEDPOL"), SigningKey.generate("BE-FEDPOL"), SCHEMAS),
        "key not owned": seal(alert("BE-FEDPOL"), impostor, SCHEMAS),
        "type not allowed": seal(alert("PORT-ROTTERDAM", "operation-notice"), fed.port, SCHEMAS),
        "key not yet valid": seal(alert("DE-CUSTOMS"), fed.de_future, SCHEMAS),
        "stale": seal(alert("BE-FEDPOL", created=iso(NOW - 10 * DAY)), fed.be, SCHEMAS),
        "future": seal(alert("BE-FEDPOL", created=iso(NOW + timedelta(hours=1))), fed.be, SCHEMAS),
        "expired": seal(alert("BE-FEDPOL", created=iso(NOW - timedelta(hours=2)),
                              expires=iso(NOW - timedelta(minutes=1))), fed.be, SCHEMAS),
        "bad signature": SealedRecord(tampered.topic, tampered.key, bytes(flipped), tampered.headers),
        "bad schema": signed_junk(fed.be),
        "replay: first": replayed,
    }
    send_all(setup["engine"], [*records.values(), replayed])
    route(router, len(records) + 1)

    audit: dict[str, list[dict]] = {}
    for m in read(setup["engine"], "audit"):
        e = json.loads(m.value)
        if isinstance(e.get("message_id"), str):
            audit.setdefault(e["message_id"], []).append(e)
    dlq = Counter(((dict(m.headers).get(b"ce_id") or b"").decode(errors="replace"),
                   dict(m.headers)[b"bus_reject_reason"].decode()) for m in read(setup["engine"], "dlq.rejected"))
    return {"records": records, "audit": audit, "dlq": dlq, "feed": feed_ids(setup)}


EXPECTED = {
    "rotation: old key in overlap": None,
    "rotation: new key in overlap": None,
    "rotation: old key after expiry": "key-expired",
    "rotation: new key after expiry": None,
    "revocation: created before": None,
    "revocation: created after": "key-revoked",
    "unknown key": "unknown-key",
    "key not owned": "key-not-owned-by-producer",
    "type not allowed": "type-not-allowed",
    "key not yet valid": "key-not-yet-valid",
    "stale": "stale",
    "future": "future",
    "expired": "expired",
    "bad signature": "bad-signature",
    "bad schema": "bad-schema",
    "replay: first": None,
}


@pytest.mark.parametrize("label", list(EXPECTED))
def test_reason_codes_rotation_and_revocation(kafka, setup, outcomes, label):
    record = outcomes["records"][label]
    mid = ce_id(record)
    expected = EXPECTED[label]
    key_id = dict(record.headers)["bus_keyid"].decode()
    entries = [e for e in outcomes["audit"].get(mid, []) if e.get("key_id") == key_id or expected == "bad-schema"]
    assert entries, f"{label}: no audit entry"
    if expected is None:
        assert entries[0]["outcome"] == "routed", entries[0]
        assert outcomes["feed"][mid] == 1
    else:
        assert any(e["outcome"] == "rejected" and e["reason"] == expected for e in entries), entries
        assert outcomes["dlq"][(mid, expected)] >= 1


def test_replay_is_rejected(outcomes):
    mid = ce_id(outcomes["records"]["replay: first"])
    assert outcomes["dlq"][(mid, "replay")] == 1
    assert [e["outcome"] for e in outcomes["audit"][mid]].count("routed") == 1


def test_replay_window_survives_a_router_restart_on_another_host(kafka, setup, outcomes):
    """The same group, restarted with no local state (another host): the changelog restores the
    window, and a copy of what was routed before is a replay."""
    rec = outcomes["records"]["rotation: new key after expiry"]
    router = make_router(setup, "restarted", group=f"trust-reasons-{setup['suffix']}", state="elsewhere")
    send_all(setup["engine"], [rec])
    route(router, 1)
    replays = [m for m in read(setup["engine"], "dlq.rejected")
               if dict(m.headers).get(b"ce_id") == ce_id(rec).encode()
               and dict(m.headers)[b"bus_reject_reason"] == b"replay"]
    assert len(replays) == 1


def test_tampered_or_rolled_back_directory_is_refused(kafka, setup, tmp_path):
    fed: Federation = setup["fed"]
    original = fed.path.read_text()
    tampered = tmp_path / "federation.yaml"
    tampered.write_text(original.replace("Port of Rotterdam", "Port of R0tterdam"))
    sources = FileSources(setup["base"] / "policy.yaml", federation=tampered, authority_pub=fed.authority_pub,
                          state_dir=tmp_path / "state")
    with pytest.raises(BusError, match="signature"):
        sources.load()
    unsigned = tmp_path / "unsigned.yaml"
    doc = yaml.safe_load(original)
    doc.pop("signature")
    unsigned.write_text(yaml.safe_dump(doc))
    with pytest.raises(BusError, match=r"unsigned|signature"):
        FileSources(setup["base"] / "policy.yaml", federation=unsigned, authority_pub=fed.authority_pub).load()
    # rollback: accept v2, then offer v1 again
    state = tmp_path / "rollback-state"
    v1 = tmp_path / "v1.yaml"
    v1.write_text(original)
    v2 = tmp_path / "v2.yaml"
    write_directory_file(v2, sign_directory(fed.directory.model_copy(update={"version": 2}), fed.authority))
    FileSources(setup["base"] / "policy.yaml", federation=v2, authority_pub=fed.authority_pub, state_dir=state).load()
    with pytest.raises(BusError, match=r"older|rollback"):
        FileSources(setup["base"] / "policy.yaml", federation=v1, authority_pub=fed.authority_pub,
                    state_dir=state).load()


def test_live_reload_under_traffic_drops_and_duplicates_nothing(kafka, setup, tmp_path):
    fed: Federation = setup["fed"]
    router = make_router(setup, f"reload-{setup['suffix']}", reload_interval=0.3, batch_size=20)
    thread = threading.Thread(target=router.run, daemon=True)
    thread.start()
    newcomer = SigningKey.generate("EUROPOL")
    before = [alert("BE-FEDPOL") for _ in range(120)]
    after = [alert("EUROPOL") for _ in range(20)]
    try:
        for i in range(0, len(before), 10):
            send_all(setup["engine"], [seal(a, fed.be, SCHEMAS) for a in before[i:i + 10]])
            if i == 60:  # mid-stream: a new directory version with a new EUROPOL key
                fed.write(add_key(fed.directory, "EUROPOL",
                                  MemberKey.for_public_key(newcomer.public, NOW - DAY, NOW + 365 * DAY)))
        wait_for(lambda: getattr(router.resolver, "version", 0) >= 2, 30, "the new directory to be loaded")
        send_all(setup["engine"], [seal(a, newcomer, SCHEMAS) for a in after])
        wanted = {str(a.header.message_id) for a in before + after}
        wait_for(lambda: wanted <= set(feed_ids(setup)), 60, "every alert on the feed")
    finally:
        router.stop()
        thread.join(timeout=30)
    got = Counter({i: n for i, n in feed_ids(setup).items() if i in wanted})
    assert set(got) == wanted, f"missing {len(wanted - set(got))}"
    assert max(got.values()) == 1


def test_sighup_reloads_the_directory(kafka, setup, tmp_path):
    """An operator signals the running router instead of waiting for the file check."""
    import signal
    import subprocess
    import sys

    fed: Federation = setup["fed"]
    start_at_end(setup["engine"], f"hup-{setup['suffix']}")
    cmd = [sys.executable, "-m", "bus", "router", "run", "--policy", str(setup["base"] / "policy.yaml"),
           "--federation", str(fed.path), "--authority-pub", str(fed.authority_pub),
           "--router-key", str(fed.router_key), "--router-id", "EPA-ROUTER-1",
           "--state-dir", str(tmp_path / "state"), "--group", f"hup-{setup['suffix']}",
           "--reload-interval", "3600"]
    proc = subprocess.Popen(cmd, env={**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = StreamLines(proc.stderr)

    def logged(event: str) -> dict:
        line = log.wait_for(lambda line: line.startswith("{") and json.loads(line).get("event") == event, 90,
                            f"a {event!r} log line")
        return json.loads(line)

    try:
        logged("router started")
        proc.send_signal(signal.SIGHUP)
        reloaded = logged("reloaded")
        assert reloaded["directory_version"] == fed.directory.version
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
