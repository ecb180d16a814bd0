"""A member kit on the real secured broker (SCRAM-SHA-512 + ACLs, and its TLS listener).

The operator's path as the README gives it: provision (no extra flag), write the member's
kit, hand it over. With nothing but the kit and its own key the member publishes and reads
its own feed as itself, is refused another member's feed by the broker, and reaches the
TLS listener through the kit's CA wherever the kit folder is put.
"""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka import Record
from bus.config import KafkaSettings
from bus.core.sealing import SealedRecord
from bus.errors import NotAuthorized
from tests.helpers import EXAMPLES, publish_raw, read_all, run_bus

POLICY = """\
version: "member-kit-1"
partners:
  - {id: EUROPOL, kind: eu-agency}
  - {id: NL-CUSTOMS, kind: customs}
rules:
  - id: containers
    match: {alert_types: [suspicious-container]}
    deliver_to: [EUROPOL, NL-CUSTOMS]
"""


@dataclass
class Operator:
    admin: KafkaSettings
    broker: Any
    fed: DemoFederation
    work: Path

    def env(self) -> dict[str, str]:
        assert self.admin.sasl_password is not None
        return {"BUS_BOOTSTRAP": self.admin.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "BUS_SASL_USERNAME": str(self.admin.sasl_username),
                "BUS_SASL_PASSWORD": self.admin.sasl_password.get_secret_value()}

    def trust(self) -> list[str]:
        return ["--federation", str(self.fed.directory_path), "--authority-pub", str(self.fed.authority_pub)]

    def kit(self, out: Path, *extra: str, secrets: Path | None = None) -> Any:
        return run_bus("provision", "--kit", "NL-CUSTOMS", "--out", str(out), *self.trust(),
                       "--secrets", str(secrets or self.work / "secrets.yaml"), *extra, env=self.env())


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


@pytest.fixture(scope="module")
def operator(secure_kafka, tmp_path_factory) -> Operator:
    admin, broker = secure_kafka
    work = tmp_path_factory.mktemp("member-kit")
    op = Operator(admin, broker, make_demo(work / "federation"), work)
    (work / "policy.yaml").write_text(POLICY)
    args = ["provision", *op.trust(), "--policy", str(work / "policy.yaml"), "--secrets", str(work / "secrets.yaml")]
    run_bus(*args, "--dry-run", env=op.env(), check=True)
    # The README's path: the same command without --dry-run. --rotate-passwords only because the
    # session's broker may hold these users from another module, with passwords this one does not know.
    run_bus(*args, "--rotate-passwords", env=op.env(), check=True)
    return op


def test_with_its_kit_a_member_publishes_and_reads_its_own_feed_as_itself(operator: Operator) -> None:
    out = operator.work / "kit"
    written = operator.kit(out)
    assert written.returncode == 0, written.stderr
    password = yaml.safe_load((operator.work / "secrets.yaml").read_text())["users"]["nl-customs"]
    assert password not in written.stdout + written.stderr
    assert "checked: nl-customs is provisioned and its password logs in" in written.stdout
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # Publishing: the kit's config, the member's own key, the kit's directory. Nothing of the operator's.
    published = run_bus("publish", "--config", str(out / "bus.yaml"), "--member", "NL-CUSTOMS",
                        "--key", str(operator.fed.keys_dir / "NL-CUSTOMS.key"),
                        "--federation", str(out / "federation.yaml"), "--authority-pub", str(out / "authority.pub"),
                        "--file", str(EXAMPLES / "suspicious-container.json"), "--json", timeout=90)
    assert published.returncode == 0, published.stderr
    receipt = json.loads(published.stdout.splitlines()[0])
    [record] = [r for r in read_all(operator.admin, "alerts.suspicious-container")
                if isinstance(r, Record) and r.offset == receipt["offset"] and r.partition == receipt["partition"]]

    # The router's job, done by the operator here: forward it to NL-CUSTOMS's feed.
    publish_raw(operator.admin, [_sealed(record)])
    member_env = env_file(out / "bus.env")  # the env file alone: connection, directory, authority key
    tailed = run_bus("tail", "feed.nl-customs", "--json", env=member_env, timeout=90)
    assert tailed.returncode == 0, tailed.stderr
    [line] = [json.loads(x) for x in tailed.stdout.splitlines()]
    assert line["verified"] is True and line["alert"]["header"]["message_id"] == receipt["message_id"]
    assert line["alert"]["header"]["producer"] == "NL-CUSTOMS"

    denied = run_bus("tail", "feed.europol", env=member_env, timeout=90)
    assert denied.returncode == NotAuthorized.exit_code, denied.stderr
    assert "connected as nl-customs" in denied.stderr


def test_a_tls_kit_reaches_the_tls_listener_from_wherever_it_is_kept(operator: Operator) -> None:
    out = operator.work / "tls-kit"
    written = operator.kit(out, "--kit-bootstrap", operator.broker.tls_bootstrap,
                           "--kit-security-protocol", "SASL_SSL", "--kit-ca", str(operator.broker.ca_file))
    assert written.returncode == 0, written.stderr
    moved = operator.work / "handed-over" / "kit"
    moved.parent.mkdir()
    shutil.move(out, moved)  # the member keeps it elsewhere; bus.yaml names ca.pem relative to itself
    tailed = run_bus("tail", "receipts.nl-customs", "--config", str(moved / "bus.yaml"),
                     "--federation", str(moved / "federation.yaml"), "--authority-pub", str(moved / "authority.pub"),
                     timeout=90)
    assert tailed.returncode == 0, tailed.stderr
    assert "record(s)" in tailed.stdout


def test_a_secrets_file_out_of_step_with_the_cluster_gives_no_kit(operator: Operator) -> None:
    stale = operator.work / "stale-secrets.yaml"
    users = yaml.safe_load((operator.work / "secrets.yaml").read_text())["users"]
    stale.write_text(yaml.safe_dump({"users": {**users, "nl-customs": "restored from an old backup"}}))
    stale.chmod(0o600)
    refused = operator.kit(operator.work / "stale-kit", secrets=stale)
    assert refused.returncode == 2, refused.stderr
    assert "does not log in" in refused.stderr and "--rotate-passwords" in refused.stderr
    assert "restored from an old backup" not in refused.stdout + refused.stderr
    assert not (operator.work / "stale-kit").exists()


def _sealed(record: Record) -> SealedRecord:
    """The record as the router forwards it: same bytes, same headers, to feed.nl-customs."""
    headers = [(name.decode(), value) for name, value in record.headers if value is not None]
    return SealedRecord(topic="feed.nl-customs", key=record.key or b"", value=record.value or b"",
                        headers=headers)
