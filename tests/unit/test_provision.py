"""The provisioning service's decisions, with a fake admin client (the real broker is in
tests/integration/test_acl_matrix.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.errors import SecurityDisabledError
from pydantic import SecretStr

from bus.adapters.federation_file import load_verified_directory
from bus.adapters.policy_file import load_policy
from bus.adapters.secrets_file import SecretsFile
from bus.config import KafkaSettings
from bus.services import provision as prov

REPO = Path(__file__).resolve().parents[2]


@dataclass
class FakeAdmin:
    acls_error: Exception | None = None
    closed: bool = False

    def list_topics(self) -> list[str]:
        return []

    def describe_user_scram_credentials(self) -> dict:
        return {"admin": {"error": None, "credential_infos": [
            {"mechanism": prov.SCRAM, "iterations": 4096}]}}

    def describe_acls(self, _filter):
        if self.acls_error:
            raise self.acls_error
        return [], None

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def inputs():
    directory = load_verified_directory(REPO / "federation/federation.yaml",
                                        REPO / "federation/authority.pub")
    return directory, load_policy(REPO / "policies/default.yaml")


SETTINGS = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="ops",
                         sasl_password=SecretStr("x"))


def run(monkeypatch, inputs, client, secrets, **kw):
    monkeypatch.setattr(prov.kafka_adapter, "admin", lambda _settings: client)
    return prov.provision(SETTINGS, *inputs, secrets, **kw)


def test_dry_run_plans_everything_and_writes_nothing(monkeypatch, inputs, tmp_path):
    secrets = SecretsFile(tmp_path / "secrets.yaml", env={})
    client = FakeAdmin()
    report = run(monkeypatch, inputs, client, secrets, dry_run=True, generate_missing=True)
    assert not report.applied and client.closed
    assert "svc-router" in report.generated and len(report.generated) == len(report.desired.users)
    assert not (tmp_path / "secrets.yaml").exists()


def test_missing_passwords_stop_before_any_change(monkeypatch, inputs, tmp_path):
    secrets = SecretsFile(None, env={"BUS_SECRET_SVC_ROUTER": "from-env"})
    with pytest.raises(prov.ProvisionError) as info:
        run(monkeypatch, inputs, FakeAdmin(), secrets)
    message = str(info.value)
    assert "nl-customs ($BUS_SECRET_NL_CUSTOMS)" in message
    assert "svc-router (" not in message  # its password comes from the environment
    assert "from-env" not in message


def test_a_cluster_without_authorizer_is_refused(monkeypatch, inputs):
    client = FakeAdmin(acls_error=SecurityDisabledError())
    with pytest.raises(prov.ProvisionError, match="no authorizer"):
        run(monkeypatch, inputs, client, SecretsFile(None, env={}), dry_run=True)


def test_the_provisioning_user_is_never_revoked(monkeypatch, inputs):
    from bus.core import acl_plan as ap

    own = ap.AclBinding("User:ops", ap.ResourceType.TOPIC, ap.PatternType.PREFIXED, "feed.",
                        ap.Operation.READ)

    class WithOwnGrant(FakeAdmin):
        def describe_acls(self, _filter):
            return [prov.to_kafka_acl(own)], None

    report = run(monkeypatch, inputs, WithOwnGrant(), SecretsFile(None, env={}), dry_run=True)
    assert not report.plan.of(ap.ChangeKind.DELETE_ACL)
