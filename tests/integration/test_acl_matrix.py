"""Partner isolation enforced by a real secured broker (SCRAM-SHA-512 + StandardAuthorizer).

The federation and policy are provisioned with the real `bus provision` command; then
every cell of the matrix (principal x operation x resource) runs as a real SCRAM user and
must give exactly the documented outcome, which must also be what the pure plan says.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import SecretStr

from bus.adapters.federation_file import DemoFederation, load_verified_directory, make_demo
from bus.adapters.kafka import Admin, Record, TopicPartition, open_engine
from bus.adapters.policy_file import load_policy
from bus.adapters.secrets_file import SecretsFile
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core.topology import TopicSpec
from bus.core.trust import FederationDirectory
from bus.errors import AuthenticationFailed, NotAuthorized, ProtocolMismatch, TlsFailed
from bus.services import provision as prov
from tests.helpers import example, run_bus, wait_for
from tests.router_support import session_router

POLICY = """\
version: "acl-matrix-1"
partners:
  - {id: EUROPOL, kind: eu-agency}
  - {id: NL-CUSTOMS, kind: customs}
  - {id: BE-CUSTOMS, kind: customs}
  - {id: PORT-ROTTERDAM, kind: port-authority}
rules:
  - id: containers
    match: {alert_types: [suspicious-container]}
    deliver_to: [EUROPOL, BE-CUSTOMS, NL-CUSTOMS]
"""

OTHER_ENGINE = "kafka-python"
"""The conformance subset of the matrix (one cell per kind of outcome) also runs on this engine."""


@dataclass
class Env:
    admin: KafkaSettings
    fed: DemoFederation
    policy_path: Path
    secrets_path: Path
    work: Path
    tls_bootstrap: str
    ca_file: Path

    def cli_env(self) -> dict[str, str]:
        assert self.admin.sasl_username and self.admin.sasl_password
        return {
            "BUS_BOOTSTRAP": self.admin.bootstrap,
            "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "BUS_SASL_USERNAME": self.admin.sasl_username,
            "BUS_SASL_PASSWORD": self.admin.sasl_password.get_secret_value(),
        }

    def provision_args(self, policy: Path | None = None) -> list[str]:
        return ["provision", "--federation", str(self.fed.directory_path),
                "--authority-pub", str(self.fed.authority_pub),
                "--policy", str(policy or self.policy_path), "--secrets", str(self.secrets_path)]

    def passwords(self) -> dict[str, str]:
        return yaml.safe_load(self.secrets_path.read_text())["users"]

    def as_user(self, user: str, password: str | None = None, engine: str | None = None) -> KafkaSettings:
        engine = engine or self.admin.engine
        if user == "anonymous":
            return KafkaSettings(bootstrap=self.admin.bootstrap, bootstrap_timeout_ms=5000, engine=engine)
        return KafkaSettings(
            bootstrap=self.admin.bootstrap, security_protocol="SASL_PLAINTEXT",
            sasl_username=user, bootstrap_timeout_ms=5000, client_id=f"test-{user}", engine=engine,
            sasl_password=SecretStr(password or self.passwords().get(user, "no-such-user")),
        )

    def directory(self) -> FederationDirectory:
        return load_verified_directory(self.fed.directory_path, self.fed.authority_pub)

    def desired(self) -> ap.DesiredState:
        return prov.plan_for(self.directory(), load_policy(self.policy_path))

    def current(self) -> ap.CurrentState:
        with Bus(self.admin).admin() as admin:
            return prov.read_current(admin, self.desired())

    @contextmanager
    def admin_client(self) -> Iterator[Admin]:
        with Bus(self.admin).admin() as admin:
            yield admin


def _no_secret_in(text: str, env: Env) -> None:
    for secret in [*env.passwords().values(), env.cli_env()["BUS_SASL_PASSWORD"]]:
        assert secret not in text


@pytest.fixture(scope="module")
def env(secure_kafka, tmp_path_factory) -> Env:
    admin, broker = secure_kafka
    work = tmp_path_factory.mktemp("acl-matrix")
    fed = make_demo(work / "federation", router_signer=session_router())  # the session's one router identity
    policy_path = work / "policy.yaml"
    policy_path.write_text(POLICY)
    e = Env(admin, fed, policy_path, work / "secrets.yaml", work, broker.tls_bootstrap, broker.ca_file)

    # A dry run first: it prints the plan and creates nothing, not even the secrets file.
    dry = run_bus(*e.provision_args(), "--dry-run", env=e.cli_env(), check=True)
    assert "planned changes (dry run, nothing applied)" in dry.stdout
    assert "create topic" in dry.stdout and "feed.be-customs" in dry.stdout
    assert f"password for nl-customs: to be generated into {e.secrets_path}" in dry.stdout
    assert not e.secrets_path.exists()
    with e.admin_client() as client:
        assert client.list_topics() == set()
        assert client.scram_users() == {"admin"}
        assert client.describe_acls() == []

    # Told that passwords come from elsewhere, it refuses, naming users and variables, not secrets.
    refused = run_bus(*e.provision_args(), "--no-generate-missing", env=e.cli_env())
    assert refused.returncode == 2 and "BUS_SECRET_SVC_ROUTER" in refused.stderr
    assert not e.secrets_path.exists()

    # The README's path: the same command without --dry-run generates the new users' passwords.
    applied = run_bus(*e.provision_args(), env=e.cli_env(), check=True)
    assert "applied" in applied.stdout and "create acl" in applied.stdout
    assert oct(e.secrets_path.stat().st_mode & 0o777) == "0o600"
    _no_secret_in(applied.stdout + applied.stderr, e)
    return e


# -- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    who: str
    op: str
    resource: str
    expected: str
    why: str
    group: str | None = None

    def __str__(self) -> str:
        target = f"{self.resource}@{self.group}" if self.group else self.resource
        return f"{self.who}-{self.op}-{target}-{self.expected}"


MATRIX = [
    # members publish only the alert types the directory allows them
    Cell("nl-customs", "produce", "alerts.suspicious-container", "ok", "may publish all types"),
    Cell("port-rotterdam", "produce", "alerts.corruption-indicator", "ok", "port types"),
    Cell("port-rotterdam", "produce", "alerts.operation-notice", "topic-denied",
         "port authorities may not publish operation notices"),
    Cell("terminal-operator-x", "produce", "alerts.corruption-indicator", "topic-denied",
         "may publish suspicious-container only"),
    # nobody but the router writes feeds, audit, dead letters
    Cell("nl-customs", "produce", "feed.be-customs", "topic-denied", "write into another's feed"),
    Cell("be-customs", "produce", "feed.be-customs", "topic-denied", "not even its own feed"),
    Cell("nl-customs", "produce", "audit", "topic-denied", "cannot forge the audit trail"),
    Cell("nl-customs", "produce", "dlq.rejected", "topic-denied", "only the router dead-letters"),
    # Allowed to write nowhere, the auditor's idempotent producer gets no producer id at all.
    Cell("svc-auditor", "produce", "audit", "cluster-denied", "the auditor only reads"),
    # members read only their own feed
    Cell("be-customs", "read", "feed.be-customs", "ok", "own feed"),
    Cell("be-customs", "read", "feed.nl-customs", "topic-denied", "another partner's feed"),
    Cell("terminal-operator-x", "read", "feed.port-rotterdam", "topic-denied",
         "not a partner: no feed at all"),
    Cell("be-customs", "read", "alerts.suspicious-container", "topic-denied",
         "raw alerts bypass the policy"),
    Cell("nl-customs", "read", "audit", "topic-denied", "only the auditor reads audit"),
    Cell("nl-customs", "read", "router.changelog", "topic-denied", "router state"),
    # receipts: the router writes each member's, and only that member reads them
    Cell("nl-customs", "read", "receipts.nl-customs", "ok", "own receipts"),
    Cell("terminal-operator-x", "read", "receipts.terminal-operator-x", "ok", "receipts without a feed"),
    Cell("nl-customs", "read", "receipts.europol", "topic-denied", "another member's receipts"),
    Cell("nl-customs", "produce", "receipts.nl-customs", "topic-denied", "cannot forge its own receipts"),
    Cell("svc-router", "produce", "receipts.europol", "ok", "router writes receipts.*"),
    Cell("svc-router", "read", "receipts.europol", "topic-denied", "router never reads receipts"),
    # acknowledgements and the public audit checkpoints
    Cell("europol", "produce", "acks", "ok", "recipients acknowledge"),
    Cell("be-customs", "read", "acks", "topic-denied", "acks reach originators through receipts"),
    Cell("svc-router", "read", "acks", "ok", "router checks acks"),
    Cell("nl-customs", "read", "audit.checkpoints", "ok", "checkpoints are public to members"),
    Cell("nl-customs", "produce", "audit.checkpoints", "topic-denied", "only the router signs checkpoints"),
    Cell("svc-auditor", "read", "audit.checkpoints", "ok", "auditor checks checkpoints"),
    Cell("svc-router", "produce", "router.changelog", "ok", "router state"),
    # consumer groups only under the member's own prefix
    Cell("be-customs", "join", "feed.be-customs", "ok", "own group prefix", "be-customs.matrix"),
    Cell("be-customs", "join", "feed.be-customs", "group-denied", "another member's group",
         "nl-customs.matrix"),
    Cell("be-customs", "join", "feed.be-customs", "group-denied", "the router's group",
         "bus-router"),
    # service users
    Cell("svc-auditor", "read", "audit", "ok", "auditor reads the audit trail"),
    Cell("svc-auditor", "join", "audit", "ok", "auditor group prefix", "svc-auditor.matrix"),
    Cell("svc-auditor", "read", "feed.europol", "topic-denied", "auditor sees decisions, not feeds"),
    Cell("svc-router", "read", "alerts.operation-notice", "ok", "router reads alerts.*"),
    Cell("svc-router", "produce", "feed.port-rotterdam", "ok", "router writes feed.*"),
    Cell("svc-router", "read", "feed.europol", "topic-denied", "router never reads feeds"),
    Cell("svc-router", "transact", "bus-router-matrix", "ok", "router transactional ids"),
    # no impersonating the router, no admin operations
    Cell("nl-customs", "transact", "bus-router-1", "txn-denied", "cannot fence the router"),
    Cell("nl-customs", "create-topic", "feed.evil", "topic-denied", "no topic creation"),
    Cell("nl-customs", "describe-acls", "kafka-cluster", "cluster-denied", "no ACL listing"),
    # authentication
    Cell("anonymous", "produce", "alerts.suspicious-container", "refused",
         "plaintext client on the SASL listener"),
    Cell("wrong-password", "read", "feed.nl-customs", "auth-failed", "wrong password"),
    Cell("ghost", "read", "feed.nl-customs", "auth-failed", "unknown user"),
]

# What each operation needs, in ACL terms (for the cross-check against the pure plan).
NEEDS: dict[str, list[tuple[ap.ResourceType, ap.Operation]]] = {
    "produce": [(ap.ResourceType.TOPIC, ap.Operation.WRITE)],
    "read": [(ap.ResourceType.TOPIC, ap.Operation.READ)],
    "join": [(ap.ResourceType.TOPIC, ap.Operation.READ), (ap.ResourceType.GROUP, ap.Operation.READ)],
    "transact": [(ap.ResourceType.TRANSACTIONAL_ID, ap.Operation.WRITE)],
    "create-topic": [(ap.ResourceType.TOPIC, ap.Operation.CREATE)],
    "describe-acls": [(ap.ResourceType.CLUSTER, ap.Operation.DESCRIBE)],
}

DENIED = {"topic": "topic-denied", "group": "group-denied", "transactional": "txn-denied",
          "cluster": "cluster-denied"}
"""`NotAuthorized.resource` ("topic audit", "group bus-router", ...) -> the matrix's word."""


def _produce(s: KafkaSettings, cell: Cell) -> None:
    producer = open_engine(s).producer()
    try:
        producer.send(cell.resource, b"acl-matrix probe", key=b"probe").result(15)
    finally:
        producer.close(2)


def _read(s: KafkaSettings, cell: Cell) -> None:
    consumer = open_engine(s).consumer()
    try:
        tp = TopicPartition(cell.resource, 0)
        consumer.assign([tp])
        consumer.watermarks(tp)  # metadata + ListOffsets: DESCRIBE
        for _ in range(4):  # Fetch: READ (a denial arrives within milliseconds)
            consumer.poll(0.3)
    finally:
        consumer.close()


def _join(s: KafkaSettings, cell: Cell) -> None:
    consumer = open_engine(s).consumer(group_id=cell.group, session_timeout_ms=10_000)
    try:
        consumer.subscribe([cell.resource])
        deadline = time.monotonic() + 20
        while not consumer.assignment():
            assert time.monotonic() < deadline, "joined no group within 20 s"
            consumer.poll(0.3)
    finally:
        consumer.close()


def _transact(s: KafkaSettings, cell: Cell) -> None:
    producer = open_engine(s).transactional_producer(cell.resource)
    try:
        producer.init(15)
    finally:
        producer.close(2)


def _create_topic(s: KafkaSettings, cell: Cell) -> None:
    admin = open_engine(s).admin()
    try:
        admin.create_topics([TopicSpec(cell.resource, 1, 1)])
    finally:
        admin.close()


def _describe_acls(s: KafkaSettings, cell: Cell) -> None:
    admin = open_engine(s).admin()
    try:
        admin.describe_acls()
    finally:
        admin.close()


OPS: dict[str, Callable[[KafkaSettings, Cell], None]] = {
    "produce": _produce, "read": _read, "join": _join, "transact": _transact,
    "create-topic": _create_topic, "describe-acls": _describe_acls,
}


def attempt(env: Env, cell: Cell, engine: str | None = None) -> str:
    """Run one cell as its principal; the outcome as the matrix spells it. The port's typed
    errors say what happened (no broker log needed): a denial names its resource."""
    if cell.who == "wrong-password":
        settings = env.as_user("nl-customs", password="not-the-password", engine=engine)
    else:
        settings = env.as_user(cell.who, engine=engine)
    try:
        OPS[cell.op](settings, cell)
    except NotAuthorized as exc:
        kind = (exc.resource or "").split(" ", 1)[0]
        assert kind in DENIED, f"a denial that names no resource: {exc}"
        return DENIED[kind]
    except AuthenticationFailed:
        return "auth-failed"
    except ProtocolMismatch:
        return "refused"  # a client that does not even try to authenticate
    return "ok"


def plan_verdict(env: Env, cell: Cell) -> str | None:
    """What the pure plan says about the cell (None for cells about authentication)."""
    desired = env.desired()
    if cell.who not in {u.name for u in desired.users}:
        return None
    acls = desired.acls
    for rtype, op in NEEDS[cell.op]:
        name = cell.group if rtype is ap.ResourceType.GROUP else cell.resource
        assert name is not None
        if not ap.allows(acls, cell.who, rtype, name, op):
            return "denied"
    return "ok"


@pytest.mark.parametrize("cell", MATRIX, ids=str)
def test_matrix(env: Env, cell: Cell) -> None:
    verdict = plan_verdict(env, cell)
    if verdict is not None:
        assert verdict == ("ok" if cell.expected == "ok" else "denied"), \
            f"the plan disagrees with the documented design: {cell.why}"
    assert attempt(env, cell) == cell.expected, cell.why


CONFORMANCE = [
    *(next(c for c in MATRIX if c.expected == outcome) for outcome in dict.fromkeys(c.expected for c in MATRIX)),
    *(next(c for c in MATRIX if c.expected == "ok" and c.op == op) for op in ("read", "join", "transact")),
]
"""One cell per outcome, and one per allowed operation."""


@pytest.mark.parametrize("cell", CONFORMANCE, ids=str)
def test_matrix_on_the_other_engine(env: Env, cell: Cell) -> None:
    """The same broker through the other engine gives the same answers."""
    assert attempt(env, cell, engine=OTHER_ENGINE) == cell.expected, cell.why


# -- the real router under its own credentials ---------------------------------------------


def test_router_end_to_end_under_acls(env: Env, tmp_path: Path) -> None:
    from bus.services.router import RouterIdentity, RouterOptions

    directory = env.directory()
    policy = load_policy(env.policy_path)
    assert env.fed.router_signer is not None
    router = Bus(env.as_user("svc-router")).router(
        lambda: (policy, directory), RouterIdentity(env.fed.router_id, env.fed.router_signer),
        RouterOptions(state_dir=tmp_path / "router", poll_timeout=0.2, reload_interval=3600))
    thread = threading.Thread(target=router.run, daemon=True)
    thread.start()
    try:
        alert = example("suspicious-container", producer="NL-CUSTOMS")
        # Members may not create topics; a publisher asked to create them must still work for them.
        member = Bus(env.as_user("nl-customs"))
        with member.publisher(env.fed.signers["NL-CUSTOMS"], create_topics=True) as publisher:
            publisher.publish(alert)
        wanted = str(alert.header.message_id)

        def on_feed(user: str, feed: str) -> bool:
            """Whether the alert is on `feed` now, read as `user` (with its own credentials)."""
            with Bus(env.as_user(user)).feed_reader(feed, directory, idle_timeout=1) as reader:
                return wanted in {str(r.verified.alert.header.message_id)
                                  for r in reader.records() if r.ok and r.verified}

        def audit_entry() -> dict[str, Any] | None:
            for m in Bus(env.as_user("svc-auditor")).read_to_end("audit"):
                if isinstance(m, Record) and wanted.encode() in (m.value or b""):
                    return cast(dict[str, Any], json.loads(m.value or b""))
            return None

        wait_for(lambda: on_feed("be-customs", "feed.be-customs"), 60, "the alert on feed.be-customs")
        assert on_feed("europol", "feed.europol")
        # The router writes the feeds and the audit entry in one transaction: once the entry is
        # readable, every delivery it made is too, so the producer's own feed lacking the alert
        # now means the policy excluded it (not that routing is slow).
        wait_for(lambda: audit_entry() is not None, 30, "the audit entry of the routing decision")
        entry = audit_entry()
        assert entry is not None and entry["outcome"] == "routed"
        assert "NL-CUSTOMS" not in entry["recipients"] and "BE-CUSTOMS" in entry["recipients"]
        assert not on_feed("nl-customs", "feed.nl-customs")
    finally:
        router.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert router.stats.routed >= 1


# -- provisioning is idempotent, reconciles drift, dry-runs change nothing --------------------


def test_second_run_changes_nothing(env: Env) -> None:
    result = run_bus(*env.provision_args(), env=env.cli_env(), check=True)
    assert "no changes" in result.stdout
    assert ap.diff(env.desired(), env.current()).empty


def test_dry_run_of_a_new_partner_changes_nothing(env: Env) -> None:
    bigger = env.work / "policy-bigger.yaml"
    bigger.write_text(POLICY.replace(
        "partners:\n", "partners:\n  - {id: DE-CUSTOMS, kind: customs}\n"))
    before = env.current()
    result = run_bus(*env.provision_args(bigger), "--dry-run", env=env.cli_env(), check=True)
    assert "feed.de-customs" in result.stdout and "would apply" in result.stdout
    after = env.current()
    assert after.acls == before.acls and after.users == before.users
    assert set(after.topics) == set(before.topics)
    with env.admin_client() as client:
        assert "feed.de-customs" not in client.list_topics()


def test_provisioning_follows_a_router_run_under_other_names(env: Env) -> None:
    """`bus router run --group ports-router --transactional-prefix ports-router` needs grants on
    those names: provisioning moves them there and revokes the defaults as drift."""
    moved = ["--router-group", "ports-router", "--router-transactional-prefix", "ports-router"]
    try:
        run_bus(*env.provision_args(), *moved, env=env.cli_env(), check=True)
        assert attempt(env, Cell("svc-router", "transact", "ports-router-1", "ok", "")) == "ok"
        assert attempt(env, Cell("svc-router", "join", "alerts.operation-notice", "ok", "", "ports-router")) == "ok"
        assert attempt(env, Cell("svc-router", "transact", "bus-router-1", "", "")) == "txn-denied"
        assert attempt(env, Cell("svc-router", "join", "alerts.operation-notice", "", "", "bus-router")) \
            == "group-denied"
        again = run_bus(*env.provision_args(), *moved, env=env.cli_env(), check=True)
        assert "no changes" in again.stdout
    finally:
        run_bus(*env.provision_args(), env=env.cli_env(), check=True)
    assert ap.diff(env.desired(), env.current()).empty


def test_stray_grants_are_revoked(env: Env) -> None:
    """A hand-made grant on a bus topic (to a member, or to a stranger) is drift: removed."""
    read = ap.Operation.READ
    stray = [
        ap.AclBinding("User:nl-customs", ap.ResourceType.TOPIC, ap.PatternType.LITERAL, "feed.be-customs", read),
        ap.AclBinding("User:mallory", ap.ResourceType.TOPIC, ap.PatternType.PREFIXED, "feed.", read),
    ]
    unrelated = ap.AclBinding("User:mallory", ap.ResourceType.TOPIC, ap.PatternType.LITERAL, "other.team", read)
    granted = Cell("nl-customs", "read", "feed.be-customs", "", "")
    with env.admin_client() as client:
        client.create_acls([*stray, unrelated])
        wait_for(lambda: attempt(env, granted) == "ok", 10, "the stray grant to take effect")
        result = run_bus(*env.provision_args(), env=env.cli_env(), check=True)
        assert result.stdout.count("delete acl") == 2, result.stdout
        wait_for(lambda: attempt(env, granted) == "topic-denied", 10, "the stray grant to be revoked")
        left = [a for a in client.describe_acls() if a.principal == "User:mallory"]
        assert [a.name for a in left] == ["other.team"]
        client.delete_acls([unrelated])


def test_rotate_passwords(env: Env) -> None:
    user = "terminal-operator-x"
    old = env.passwords()[user]
    secrets = SecretsFile(env.secrets_path)
    secrets.generate([user])  # a new password in the file; the broker still has the old one
    new = env.passwords()[user]
    assert new != old
    probe = Cell(user, "produce", "alerts.suspicious-container", "ok", "")
    result = run_bus(*env.provision_args(), "--rotate-passwords", env=env.cli_env(), check=True)
    assert "rotate password" in result.stdout
    _no_secret_in(result.stdout + result.stderr, env)
    assert attempt(env, probe) == "ok"
    with pytest.raises(AuthenticationFailed, match=user):
        _produce(env.as_user(user, password=old), probe)


# -- the TLS listener -----------------------------------------------------------------------


def test_tls_listener_same_grants(env: Env) -> None:
    """SASL_SSL with the project's CA: same users, same ACLs; without the CA: no connection."""
    def over_tls(user: str, cafile: Path | None, password: str | None = None) -> KafkaSettings:
        return env.as_user(user, password).model_copy(update={
            "bootstrap": env.tls_bootstrap, "security_protocol": "SASL_SSL", "ssl_cafile": cafile})

    ok = Cell("nl-customs", "produce", "alerts.suspicious-container", "ok", "")
    _produce(over_tls("nl-customs", env.ca_file), ok)
    with pytest.raises(NotAuthorized, match=r"feed\.europol"):
        _read(over_tls("nl-customs", env.ca_file), Cell("nl-customs", "read", "feed.europol", "", ""))
    with pytest.raises(AuthenticationFailed):
        _produce(over_tls("nl-customs", env.ca_file, password="wrong"), ok)
    with pytest.raises(TlsFailed):
        _produce(over_tls("nl-customs", None), ok)  # the system CAs do not know ours


def test_member_uses_the_cli_as_its_own_principal(env: Env) -> None:
    """`bus publish` / `bus tail` with a member's SCRAM credentials: allowed where the design says."""
    member_env = {**env.cli_env(), "BUS_SASL_USERNAME": "nl-customs",
                  "BUS_SASL_PASSWORD": env.passwords()["nl-customs"]}
    published = run_bus("publish", "--file", "examples/alerts/suspicious-container.json",
                        "--member", "NL-CUSTOMS", "--key", str(env.fed.keys_dir / "NL-CUSTOMS.key"),
                        env=member_env)
    assert published.returncode == 0, published.stderr
    assert "alerts.suspicious-container" in published.stdout
    trust = ["--federation", str(env.fed.directory_path), "--authority-pub", str(env.fed.authority_pub)]
    own = run_bus("tail", "feed.nl-customs", *trust, env=member_env)
    assert own.returncode == 0, own.stderr
    other = run_bus("tail", "feed.europol", *trust, env=member_env)
    assert other.returncode == NotAuthorized.exit_code and "topic feed.europol" in other.stderr
    _no_secret_in(published.stdout + published.stderr + other.stderr, env)
