"""`bus publish` refuses another member's key before anything goes out (issue 16).

The router would dead-letter every such alert as `key-not-owned-by-producer`, where the
sender may never look. The publisher knows better in two cases: a directory that lists the
key (it decides), and a key file named for another member (`EUROPOL.key`). The Kafka engine
is the in-memory one, so "nothing was sent" is checked on the cluster itself.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bus.adapters.federation_file import DemoFederation, make_demo
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.keystore import generate_keypair, member_of_signing_key_file
from bus.cli import app
from bus.composition import Bus
from bus.core.key_owner import check_key_owner, key_note
from bus.core.trust import revoke_key, utcnow
from bus.errors import KeyOwnerMismatch
from tests.helpers import EXAMPLES

ALERT = str(EXAMPLES / "suspicious-container.json")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return make_demo(tmp_path_factory.mktemp("fed") / "federation")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> MemoryEngine:
    memory = MemoryEngine()
    monkeypatch.setattr("bus.composition.open_engine", lambda settings: memory)
    return memory


def publish(member: str, key: Path, *extra: str) -> tuple[int, list[str], str]:
    """(exit code, non-empty stderr lines, stdout) of `bus publish`."""
    result = CliRunner().invoke(app, ["publish", "--file", ALERT, "--member", member, "--key", str(key),
                                      "--no-encrypt", *extra], env={"NO_COLOR": "1", "COLUMNS": "300"})
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()], result.stdout


def trust(fed: DemoFederation) -> list[str]:
    return ["--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub)]


def copy_key(fed: DemoFederation, member: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fed.keys_dir / f"{member}.key", to)
    to.chmod(0o600)
    return to


def sent(engine: MemoryEngine) -> int:
    """Records on the alert topics of the in-memory cluster."""
    bus = Bus(engine=engine)
    with bus.admin() as admin:
        topics = [t for t in admin.list_topics() if t.startswith("alerts.")]
    return sum(len(bus.read_to_end(t, timeout=5)) for t in topics)


def test_a_key_file_named_for_another_member_is_refused_without_a_directory(fed, engine, tmp_path):
    code, lines, stdout = publish("NL-CUSTOMS", copy_key(fed, "EUROPOL", tmp_path / "EUROPOL.key"))
    assert code == KeyOwnerMismatch.exit_code == 10
    [line] = lines
    assert line.startswith("error: ") and "named for member EUROPOL, not for --member NL-CUSTOMS" in line
    assert "nothing was sent" in line and stdout == ""
    assert sent(engine) == 0


def test_the_directory_names_the_owner_whatever_the_file_is_called(fed, engine, tmp_path):
    unlabelled = copy_key(fed, "EUROPOL", tmp_path / "signing.key")
    code, [line], _ = publish("NL-CUSTOMS", unlabelled, *trust(fed))
    assert code == 10
    assert f"(key {fed.signers['EUROPOL'].key_id}) belongs to EUROPOL in federation directory EPA" in line
    assert "not to --member NL-CUSTOMS" in line
    assert sent(engine) == 0
    # The file's name is only a hint: a directory that lists the key as NL-CUSTOMS's wins over it.
    misnamed = copy_key(fed, "NL-CUSTOMS", tmp_path / "renamed" / "EUROPOL.key")
    code, lines, _ = publish("NL-CUSTOMS", misnamed, *trust(fed))
    assert code == 0, lines
    assert lines == [f"published 1 alert(s) as NL-CUSTOMS (key {fed.signers['NL-CUSTOMS'].key_id}) "
                     "to 127.0.0.1:9092"]
    assert sent(engine) == 1


def test_a_key_the_directory_does_not_list_is_sent_with_a_warning(fed, engine, tmp_path):
    """The router may hold a newer directory that lists it: a warning, not a refusal."""
    key, _, signer = generate_keypair("NL-CUSTOMS", tmp_path)
    code, lines, _ = publish("NL-CUSTOMS", key, *trust(fed))
    assert code == 0, lines
    assert lines[0].startswith("warning: ") and f"does not list key {signer.key_id}" in lines[0]
    assert "unknown-key" in lines[0] and lines[1].startswith("published 1 alert(s)")
    assert sent(engine) == 1


def test_the_own_key_goes_out_without_a_word(fed, engine):
    code, lines, _ = publish("NL-CUSTOMS", fed.keys_dir / "NL-CUSTOMS.key", *trust(fed))
    assert code == 0 and len(lines) == 1 and lines[0].startswith("published 1 alert(s)"), lines


def test_key_file_labels() -> None:
    assert member_of_signing_key_file(Path("/k/NL-CUSTOMS.key")) == "NL-CUSTOMS"
    assert member_of_signing_key_file(Path("/k/NL-CUSTOMS.enc.key")) is None
    assert member_of_signing_key_file(Path("/k/signing.key")) is None
    assert member_of_signing_key_file(Path("/k/NL-CUSTOMS.pem")) is None


def test_key_notes_name_what_the_router_will_say(fed) -> None:
    directory, key_id, now = fed.directory, fed.signers["NL-CUSTOMS"].key_id, utcnow()
    assert key_note(key_id, "NL-CUSTOMS", directory, now) is None
    assert key_note(key_id, "EUROPOL", directory, now) is None  # another's key: check_key_owner's business
    revoked = revoke_key(directory, "NL-CUSTOMS", key_id, at=now - timedelta(hours=1), reason="lost")
    assert "is revoked since" in str(key_note(key_id, "NL-CUSTOMS", revoked, now))
    assert str(key_note(key_id, "NL-CUSTOMS", revoked, now)).endswith("as key-revoked")
    assert str(key_note(key_id, "NL-CUSTOMS", directory, now + timedelta(days=3650))).endswith("as key-expired")
    with pytest.raises(KeyOwnerMismatch):
        check_key_owner(key_id, "EUROPOL", directory=directory)
    check_key_owner(key_id, "NL-CUSTOMS", directory=directory, file_label="EUROPOL")  # the directory decides
    check_key_owner("unknown", "NL-CUSTOMS", directory=directory, file_label=None)
    with pytest.raises(KeyOwnerMismatch, match="named for member EUROPOL"):
        check_key_owner("unknown", "NL-CUSTOMS", directory=directory, file_label="EUROPOL")


def test_a_connector_with_another_members_key_does_not_start(fed, engine, tmp_path):
    """The connectors sign with a key file too: `bus connector run` refuses it at start, exit 10."""
    env = {"NO_COLOR": "1", "BUS_CONNECTOR_MEMBER": "NL-CUSTOMS",
           "BUS_CONNECTOR_KEY_FILE": str(copy_key(fed, "EUROPOL", tmp_path / "signing.key")),
           "BUS_CONNECTOR_PUBLISH__FEDERATION": str(fed.directory_path),
           "BUS_CONNECTOR_PUBLISH__AUTHORITY_PUB": str(fed.authority_pub),
           "BUS_CONNECTOR_DIRECTORY_DROP__INBOX": str(tmp_path / "inbox"),
           "BUS_CONNECTOR_HEALTH__PORT": "0", "BUS_CONNECTOR_LOG_JSON": "false"}
    result = CliRunner().invoke(app, ["connector", "run", "directory-drop"], env=env)
    assert result.exit_code == KeyOwnerMismatch.exit_code, result.output
    assert "belongs to EUROPOL in federation directory EPA" in result.stderr
    assert sent(engine) == 0
