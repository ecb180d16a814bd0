"""The provisioning service on the in-memory Kafka engine (the real secured broker is in
tests/integration/test_acl_matrix.py): what it plans, what it applies, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bus.adapters.federation_file import load_verified_directory
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.policy_file import load_policy
from bus.adapters.secrets_file import SecretsFile
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core import acl_plan as ap
from bus.core import topology
from bus.errors import NotAuthorized, ProvisionError
from bus.services import provision as prov

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs():
    directory = load_verified_directory(REPO / "federation/federation.yaml",
                                        REPO / "federation/authority.pub")
    return directory, load_policy(REPO / "policies/default.yaml")


def bus_on(engine: MemoryEngine, user: str = "ops") -> Bus:
    """The bus as the provisioning user `user` sees it (a super user on the memory engine)."""
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username=user, sasl_password=SecretStr("x"))
    return Bus(settings, engine=engine)


def test_dry_run_plans_everything_and_writes_nothing(inputs, tmp_path):
    engine = MemoryEngine()
    secrets = SecretsFile(tmp_path / "secrets.yaml", env={})
    report = bus_on(engine).provision(*inputs, secrets, dry_run=True, generate_missing=True)
    assert not report.applied
    assert "svc-router" in report.generated and len(report.generated) == len(report.desired.users)
    assert {c.subject for c in report.plan.of(ap.ChangeKind.CREATE_TOPIC)} == {t.name for t in report.desired.topics}
    assert not (tmp_path / "secrets.yaml").exists()
    admin = engine.admin()
    assert admin.list_topics() == set() and admin.scram_users() == set() and admin.describe_acls() == []


def test_apply_then_nothing_left_to_do_and_members_are_isolated(inputs, tmp_path):
    engine = MemoryEngine()
    secrets = SecretsFile(tmp_path / "secrets.yaml", env={})
    report = bus_on(engine).provision(*inputs, secrets, generate_missing=True, settle_timeout=1)
    assert report.applied and report.changed
    again = bus_on(engine).provision(*inputs, secrets)
    assert again.plan.empty and not again.changed

    def as_member(user: str) -> Bus:
        password = secrets.password(user)
        assert password is not None
        return Bus(engine=engine.as_user(user, password.get_secret_value()))

    nl = as_member("nl-customs")
    assert nl.engine.consumer().partitions_for("receipts.nl-customs") == [0]
    with pytest.raises(NotAuthorized, match=r"receipts\.be-customs"):
        nl.engine.consumer().partitions_for("receipts.be-customs")
    producer = nl.engine.producer()
    producer.send(topology.ACKS_TOPIC, b"ack", key=b"k").result(1)
    with pytest.raises(NotAuthorized, match="audit"):
        producer.send(topology.AUDIT_TOPIC, b"forged", key=b"k")


def test_replication_follows_the_cluster_unless_given(inputs, tmp_path):
    secrets = SecretsFile(tmp_path / "secrets.yaml", env={})
    report = bus_on(MemoryEngine(brokers=3)).provision(*inputs, secrets, dry_run=True)
    assert report.replication == topology.Replication(3, 2)
    assert {t.replication for t in report.desired.topics} == {3}
    assert all(("min.insync.replicas", "2") in t.config for t in report.desired.topics)
    small = bus_on(MemoryEngine(brokers=5)).provision(*inputs, secrets, dry_run=True, replication=2)
    assert small.replication == topology.Replication(2, 1)
    assert {t.replication for t in small.desired.topics} == {2}


def test_a_changed_partition_count_of_a_co_partitioned_topic_is_refused_before_any_change(inputs, tmp_path):
    engine = MemoryEngine()
    engine.create_topic("alerts.suspicious-container", partitions=3)
    secrets = SecretsFile(tmp_path / "secrets.yaml", env={})
    dry = bus_on(engine).provision(*inputs, secrets, dry_run=True)
    [error] = dry.plan.errors
    assert error.startswith("alerts.suspicious-container has 3 partitions, the plan says 6")
    assert not dry.plan.of(ap.ChangeKind.ADD_PARTITIONS)
    with pytest.raises(ProvisionError, match=r"refusing to provision.*--partitions 3"):
        bus_on(engine).provision(*inputs, secrets, generate_missing=True)
    assert engine.admin().list_topics() == {"alerts.suspicious-container"}
    assert engine.admin().scram_users() == set()
    # Provisioning with the count the topics have is fine.
    report = bus_on(engine).provision(*inputs, secrets, partitions=3, generate_missing=True, settle_timeout=1)
    assert report.applied and not report.plan.errors


def test_missing_passwords_stop_before_any_change(inputs):
    engine = MemoryEngine()
    secrets = SecretsFile(None, env={"BUS_SECRET_SVC_ROUTER": "from-env"})
    with pytest.raises(ProvisionError) as info:
        bus_on(engine).provision(*inputs, secrets)
    message = str(info.value)
    assert "nl-customs ($BUS_SECRET_NL_CUSTOMS)" in message
    assert "svc-router (" not in message  # its password comes from the environment
    assert "from-env" not in message
    assert engine.admin().list_topics() == set()


def test_a_cluster_without_authorizer_is_refused(inputs):
    with pytest.raises(ProvisionError, match="no authorizer"):
        bus_on(MemoryEngine(authorizer=False)).provision(*inputs, SecretsFile(None, env={}), dry_run=True)


def test_the_provisioning_user_is_never_revoked(inputs):
    engine = MemoryEngine()
    own = ap.AclBinding("User:ops", ap.ResourceType.TOPIC, ap.PatternType.PREFIXED, "feed.", ap.Operation.READ)
    stranger = ap.AclBinding("User:mallory", ap.ResourceType.TOPIC, ap.PatternType.PREFIXED, "feed.",
                             ap.Operation.READ)
    engine.admin().create_acls([own, stranger])
    report = bus_on(engine, "ops").provision(*inputs, SecretsFile(None, env={}), dry_run=True)
    assert [c.acl for c in report.plan.of(ap.ChangeKind.DELETE_ACL)] == [stranger]


def test_the_plan_holds_core_topics_feeds_and_one_receipts_topic_per_member(inputs):
    directory, policy = inputs
    desired = prov.plan_for(directory, policy)
    names = {t.name for t in desired.topics}
    core = {s.name for s in topology.core_topics(["suspicious-container", "corruption-indicator",
                                                  "operation-notice"], topology.Replication(1, 1))}
    assert core <= names
    assert {n for n in names if n.startswith("receipts.")} == {topology.receipts_topic(m.id) for m in directory.members}
    assert {n for n in names if n.startswith("feed.")} == set(policy.feeds().values())


def test_the_cli_reports_a_refused_partition_change_as_an_error(monkeypatch, tmp_path):
    """`bus provision --dry-run` lists the error next to the plan and exits 2; so does a real run,
    having applied nothing."""
    from typer.testing import CliRunner

    from bus.cli import app

    engine = MemoryEngine()
    engine.create_topic("audit", partitions=1)
    monkeypatch.setattr("bus.composition.open_engine", lambda settings: engine)
    args = ["provision", "--federation", str(REPO / "federation/federation.yaml"),
            "--authority-pub", str(REPO / "federation/authority.pub"),
            "--policy", str(REPO / "policies/default.yaml"), "--secrets", str(tmp_path / "secrets.yaml")]
    dry = CliRunner().invoke(app, [*args, "--dry-run"], env={"COLUMNS": "200"})
    assert dry.exit_code == 2, dry.output
    assert "error: audit has 1 partitions, the plan says 6" in dry.output
    assert "would apply" in dry.output and "a real run would apply nothing" in dry.output
    real = CliRunner().invoke(app, [*args, "--generate-missing"], env={"COLUMNS": "200"})
    assert real.exit_code == 2 and "refusing to provision" in real.output
    assert engine.admin().list_topics() == {"audit"} and not (tmp_path / "secrets.yaml").exists()
