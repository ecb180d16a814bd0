"""`bus provision --kit MEMBER --out DIR` on the in-memory Kafka engine (issue 16).

The kit must be everything a member needs and nothing it must not see: its own
credentials, checked against the cluster before they are handed over, the signed
directory and the authority key, as a config file and an env file, every file 0600.
The secured broker runs the same path in tests/integration/test_member_kit.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bus.adapters.federation_file import DemoFederation, load_verified_directory, make_demo
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.member_kit import KIT_FILES
from bus.adapters.policy_file import load_policy
from bus.adapters.secrets_file import SecretsFile
from bus.cli import app
from bus.composition import Bus
from bus.config import KafkaSettings, load_settings
from tests.helpers import EXAMPLES, REPO

ADMIN = "ops"


@pytest.fixture
def fed(tmp_path: Path) -> DemoFederation:
    return make_demo(tmp_path / "federation")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> MemoryEngine:
    """One in-memory cluster; every client sees it as the user its settings name (`ops` is the
    operator, a super user), with SCRAM passwords checked and ACLs enforced."""
    memory = MemoryEngine()

    def as_settings_say(settings: KafkaSettings) -> MemoryEngine:
        if settings.sasl_username in (None, ADMIN):
            return memory
        assert settings.sasl_password is not None
        return memory.as_user(settings.sasl_username, settings.sasl_password.get_secret_value())

    monkeypatch.setattr("bus.composition.open_engine", as_settings_say)
    return memory


@pytest.fixture
def secrets_path(fed: DemoFederation, engine: MemoryEngine, tmp_path: Path) -> Path:
    """The demo federation provisioned with the default policy; its passwords in a 0600 file."""
    path = tmp_path / "secrets.yaml"
    Bus(operator(), engine=engine).provision(
        load_verified_directory(fed.directory_path, fed.authority_pub), load_policy(REPO / "policies/default.yaml"),
        SecretsFile(path, env={}), settle_timeout=1)
    return path


def operator(**changes: object) -> KafkaSettings:
    return KafkaSettings(bootstrap="kafka.internal:9092", security_protocol="SASL_PLAINTEXT", sasl_username=ADMIN,
                         sasl_password="operator password", **changes)  # type: ignore[arg-type]


def passwords(secrets_path: Path) -> dict[str, str]:
    return dict(yaml.safe_load(secrets_path.read_text())["users"])


def bus(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    """`bus ARGS` as the operator (its connection in the environment; None in `env` unsets one)."""
    full = {"NO_COLOR": "1", "COLUMNS": "200", "BUS_BOOTSTRAP": "kafka.internal:9092",
            "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BUS_SASL_USERNAME": ADMIN,
            "BUS_SASL_PASSWORD": "operator password", **(env or {})}
    result = CliRunner().invoke(app, list(args), env=full)
    return result.exit_code, result.stdout, result.stderr


def kit_args(fed: DemoFederation, secrets_path: Path, out: Path, member: str = "NL-CUSTOMS") -> list[str]:
    return ["provision", "--kit", member, "--out", str(out), "--federation", str(fed.directory_path),
            "--authority-pub", str(fed.authority_pub), "--secrets", str(secrets_path)]


def env_file(path: Path) -> dict[str, str]:
    """An env file as systemd reads it: NAME=value lines, comments skipped, quotes stripped."""
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value[1:-1] if value[:1] == "'" else value
    return values


def test_a_kit_holds_the_members_own_connection_every_file_0600(fed, engine, secrets_path, tmp_path):
    out = tmp_path / "kits" / "nl-customs"
    code, stdout, stderr = bus(*kit_args(fed, secrets_path, out))
    assert code == 0, stderr
    password = passwords(secrets_path)["nl-customs"]
    assert password not in stdout + stderr and "operator password" not in stdout + stderr
    assert "checked: nl-customs is provisioned and its password logs in" in stdout

    assert sorted(p.name for p in out.iterdir()) == sorted(set(KIT_FILES) - {"ca.pem"})
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    settings = load_settings(out / "bus.yaml")
    assert (settings.bootstrap, settings.security_protocol, settings.sasl_mechanism, settings.sasl_username) == (
        "kafka.internal:9092", "SASL_PLAINTEXT", "SCRAM-SHA-512", "nl-customs")
    assert settings.sasl_password is not None and settings.sasl_password.get_secret_value() == password
    env = env_file(out / "bus.env")
    assert env["BUS_SASL_USERNAME"] == "nl-customs" and env["BUS_SASL_PASSWORD"] == password
    assert env["BUS_MEMBER"] == env["BUS_CONNECTOR_MEMBER"] == "NL-CUSTOMS"
    assert env["BUS_FEDERATION"] == env["BUS_CONNECTOR_PUBLISH__FEDERATION"] == str(out.resolve() / "federation.yaml")
    assert load_verified_directory(Path(env["BUS_FEDERATION"]), Path(env["BUS_AUTHORITY_PUB"])).version \
        == fed.directory.version
    readme = (out / "README.txt").read_text()
    assert password not in readme and "bus tail feed.nl-customs" in readme
    # Nobody else's password went into it.
    others = {p for user, p in passwords(secrets_path).items() if user != "nl-customs"}
    assert not any(p in (out / name).read_text() for name in ("bus.yaml", "bus.env") for p in others)


def test_the_kits_config_publishes_and_reads_as_the_member(fed, engine, secrets_path, tmp_path):
    """Through the CLI, with nothing but the kit and the member's own key: published as nl-customs
    (so only where nl-customs may write), its receipts readable, another member's feed refused."""
    out = tmp_path / "kit"
    assert bus(*kit_args(fed, secrets_path, out))[0] == 0
    as_member: dict[str, str | None] = {"BUS_CONFIG": str(out / "bus.yaml"), "BUS_SASL_USERNAME": None,
                                        "BUS_SASL_PASSWORD": None, "BUS_SECURITY_PROTOCOL": None,
                                        "BUS_BOOTSTRAP": None}  # the operator's settings: unset
    code, stdout, stderr = bus("publish", "--file", str(EXAMPLES / "suspicious-container.json"),
                               "--member", "NL-CUSTOMS", "--key", str(fed.keys_dir / "NL-CUSTOMS.key"),
                               "--federation", str(out / "federation.yaml"),
                               "--authority-pub", str(out / "authority.pub"), env=as_member)
    assert code == 0, stderr
    assert "alerts.suspicious-container" in stdout
    [record] = Bus(engine=engine).read_to_end("alerts.suspicious-container", timeout=5)
    assert dict(record.headers)[b"ce_source"].endswith(b"NL-CUSTOMS")

    kit_env = {**as_member, "BUS_CONFIG": None, **env_file(out / "bus.env")}  # the env file alone
    for own in ("feed.nl-customs", "receipts.nl-customs"):
        code, stdout, stderr = bus("tail", own, env=kit_env)
        assert code == 0 and "0 record(s)" in stdout, stderr
    code, _, stderr = bus("tail", "feed.europol", env=kit_env)
    assert code == 5 and "connected as nl-customs" in stderr, stderr


def test_a_tls_kit_carries_its_ca_and_names_it_relative_to_the_config(fed, engine, secrets_path, tmp_path,
                                                                     monkeypatch):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    out = tmp_path / "kit"
    code, _, stderr = bus(*kit_args(fed, secrets_path, out), "--kit-bootstrap", "kafka.epa.example:9093",
                          "--kit-security-protocol", "SASL_SSL", "--kit-ca", str(ca),
                          "--installed-at", "/etc/bus/kit")
    assert code == 0, stderr
    assert (out / "ca.pem").read_bytes() == ca.read_bytes()
    assert stat.S_IMODE((out / "ca.pem").stat().st_mode) == 0o600
    moved = tmp_path / "elsewhere" / "kit"
    moved.parent.mkdir()
    out.rename(moved)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(moved / "bus.yaml")
    assert settings.ssl_cafile == moved / "ca.pem"  # beside the config file, wherever it went
    assert (settings.bootstrap, settings.security_protocol) == ("kafka.epa.example:9093", "SASL_SSL")
    env = env_file(moved / "bus.env")
    assert env["BUS_SSL_CAFILE"] == "/etc/bus/kit/ca.pem" and env["BUS_AUTHORITY_PUB"] == "/etc/bus/kit/authority.pub"
    assert "kafka.epa.example:9093 (SASL_SSL)" in (moved / "README.txt").read_text()


def test_the_env_file_configures_a_connector(fed, engine, secrets_path, tmp_path, monkeypatch):
    from connectors.directory_drop.config import DirectoryDropSettings
    from connectors.sdk.config import load_config

    out = tmp_path / "kit"
    assert bus(*kit_args(fed, secrets_path, out))[0] == 0
    for name, value in env_file(out / "bus.env").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BUS_CONNECTOR_KEY_FILE", str(fed.keys_dir / "NL-CUSTOMS.key"))
    monkeypatch.setenv("BUS_CONNECTOR_DIRECTORY_DROP__INBOX", str(tmp_path / "inbox"))
    config = load_config(DirectoryDropSettings, None)
    assert config.member == "NL-CUSTOMS" and config.kafka.sasl_username == "nl-customs"
    assert config.publish.federation == out.resolve() / "federation.yaml"


@pytest.mark.parametrize(("args", "message"), [
    (["--kit", "NOBODY"], "NOBODY is not a member of federation directory EPA"),
    (["--kit-security-protocol", "SSL"], "a member kit needs a SASL protocol"),
    (["--dry-run"], "--kit writes a member kit and changes nothing"),
])
def test_mistakes_are_refused_before_anything_is_written(fed, engine, secrets_path, tmp_path, args, message):
    out = tmp_path / "kit"
    base = kit_args(fed, secrets_path, out)
    if args[0] == "--kit":
        base[base.index("--kit") + 1] = args[1]
        args = []
    code, _, stderr = bus(*base, *args)
    assert code == 2 and message in " ".join(stderr.split()), stderr
    assert not out.exists()


def test_a_member_not_provisioned_yet_gets_no_kit(fed, engine, tmp_path):
    code, _, stderr = bus(*kit_args(fed, tmp_path / "secrets.yaml", tmp_path / "kit"),
                          env={"BUS_SECRET_NL_CUSTOMS": "a password nobody set"})
    assert code == 2 and "nl-customs has no SCRAM credential on kafka.internal:9092" in stderr
    assert "bus provision" in stderr and "a password nobody set" not in stderr


def test_a_password_the_cluster_does_not_hold_gets_no_kit(fed, engine, secrets_path, tmp_path):
    """A secrets file out of step with the cluster (restored from an old backup, say)."""
    stale = tmp_path / "stale.yaml"
    stale.write_text(yaml.safe_dump({"users": {**passwords(secrets_path), "nl-customs": "an old password"}}))
    stale.chmod(0o600)
    code, _, stderr = bus(*kit_args(fed, stale, tmp_path / "kit"))
    assert code == 2 and f"the password for nl-customs from {stale} does not log in" in " ".join(stderr.split())
    assert "--rotate-passwords" in stderr and "an old password" not in stderr
    assert not (tmp_path / "kit").exists()


def test_an_existing_kit_is_replaced_only_with_force(fed, engine, secrets_path, tmp_path):
    out = tmp_path / "kit"
    ca = tmp_path / "ca.pem"
    ca.write_text("ca\n")
    assert bus(*kit_args(fed, secrets_path, out), "--kit-security-protocol", "SASL_SSL", "--kit-ca", str(ca))[0] == 0
    before = (out / "bus.yaml").read_bytes()
    code, _, stderr = bus(*kit_args(fed, secrets_path, out))
    assert code == 2 and "already holds a member kit" in stderr and "--force" in stderr
    assert (out / "bus.yaml").read_bytes() == before
    code, _, stderr = bus(*kit_args(fed, secrets_path, out), "--force")
    assert code == 0, stderr
    assert not (out / "ca.pem").exists()  # a plaintext kit keeps no CA of an earlier TLS one
    assert load_settings(out / "bus.yaml").ssl_cafile is None


def test_a_kit_is_not_written_into_a_git_work_tree_that_does_not_ignore_it(fed, engine, secrets_path, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert os.system(f"git init -q {repo}") == 0
    code, _, stderr = bus(*kit_args(fed, secrets_path, repo / "kit"))
    assert code == 2 and "inside a git work tree and not ignored" in stderr
    assert not (repo / "kit").exists()


def test_a_service_gets_a_kit_too_without_member_settings(fed, engine, secrets_path, tmp_path):
    """The router's and the auditor's passwords are handed over the same way, never parsed by hand."""
    out = tmp_path / "auditor"
    code, stdout, stderr = bus(*kit_args(fed, secrets_path, out, member="svc-auditor"))
    assert code == 0, stderr
    assert stdout.startswith("service kit for svc-auditor") and "hand the folder" not in stdout
    env = env_file(out / "bus.env")
    assert env["BUS_SASL_USERNAME"] == "svc-auditor" and "BUS_MEMBER" not in env
    assert not any(name.startswith("BUS_CONNECTOR_") for name in env)
    settings = load_settings(out / "bus.yaml")
    assert settings.sasl_password is not None
    auditor = engine.as_user("svc-auditor", settings.sasl_password.get_secret_value())
    assert Bus(engine=auditor).read_to_end("audit", timeout=5) == []  # may read the audit trail
