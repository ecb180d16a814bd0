"""Encryption keys: the X25519 checks, the directory entries, key files, the CLI, and where
producers (CLI, connectors) and readers (tail) pick them up."""

from __future__ import annotations

import base64
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
import yaml
from typer.testing import CliRunner

from bus.adapters.federation_file import (
    WatchedDirectory,
    load_verified_directory,
    make_demo,
    read_directory_file,
    write_directory_file,
)
from bus.adapters.kafka import Record
from bus.adapters.keystore import (
    generate_encryption_keypair,
    generate_keypair,
    load_decryption_key,
    load_keyring,
    member_of_encryption_key_file,
)
from bus.cli import app
from bus.cli.tail import record_dict, row
from bus.core.confidential import Decryptor, EncryptMode, decrypt, seal_encrypted, unseal_any
from bus.core.keys import DecryptionKey, EncryptionPublicKey, SigningKey, thumbprint
from bus.core.topology import alert_topic
from bus.core.trust import KeyUse, MemberKey, add_key, sign_directory
from bus.errors import DirectoryError, EncryptionError, KeyFileError, RejectReason, VerificationError
from bus.services.reader import FeedRecord
from connectors.sdk.config import PublishSettings
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.publishing import ReliablePublisher
from tests.helpers import CODES, SCHEMAS, example

P = 2**255 - 19
NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)

#: Curve25519 points of small order (0, 1, the two of order 8, p - 1), little-endian.
SMALL_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P - 1).to_bytes(32, "little"),
]


@pytest.mark.parametrize("raw", SMALL_ORDER, ids=lambda r: r.hex()[:8])
def test_small_order_points_are_refused(raw: bytes) -> None:
    with pytest.raises(KeyFileError, match="small-order"):
        EncryptionPublicKey.from_raw(raw)


@pytest.mark.parametrize("raw", [P.to_bytes(32, "little"), (P + 1).to_bytes(32, "little"),
                                 bytes(31) + b"\x80", bytes(31), bytes(33)],
                         ids=["p", "p+1", "top-bit", "short", "long"])
def test_non_canonical_and_wrong_size_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(KeyFileError):
        EncryptionPublicKey.from_raw(raw)


def test_a_real_key_round_trips_and_its_id_is_the_thumbprint() -> None:
    key = DecryptionKey.generate("NL-POLICE")
    public = key.public
    assert EncryptionPublicKey.from_raw(public.raw) == public
    assert EncryptionPublicKey.from_raw_b64(public.to_raw_b64()).key_id == key.key_id == thumbprint(public.raw)
    assert EncryptionPublicKey.from_pem(public.to_pem()).key_id == key.key_id
    assert DecryptionKey.from_pem("NL-POLICE", key.to_pem()).key_id == key.key_id
    with pytest.raises(KeyFileError, match="not an X25519 public key"):
        EncryptionPublicKey.from_pem(SigningKey.generate("X").public.to_pem())
    with pytest.raises(KeyFileError, match="not an X25519 private key"):
        DecryptionKey.from_pem("X", SigningKey.generate("X").to_pem())


def directory_entry(use: KeyUse, public_key: str, key_id: str) -> MemberKey:
    return MemberKey(key_id=key_id, use=use, public_key=public_key, not_before=NOW, not_after=NOW + DAY)


def test_directory_entries_check_the_key_of_their_use() -> None:
    enc = DecryptionKey.generate("NL-POLICE").public
    entry = MemberKey.for_public_key(enc, NOW, NOW + DAY)
    assert entry.use is KeyUse.ENCRYPTION and entry.encryption_public == enc
    with pytest.raises(KeyFileError, match="not a signing key"):
        _ = entry.public
    with pytest.raises(ValueError, match="thumbprint"):
        directory_entry(KeyUse.ENCRYPTION, enc.to_raw_b64(), "0" * 32)
    with pytest.raises(ValueError, match="small-order"):
        directory_entry(KeyUse.ENCRYPTION, base64.b64encode(bytes(32)).decode(), thumbprint(bytes(32)))


def test_use_is_signed_for_encryption_keys_and_left_out_for_signing_keys(tmp_path: Path) -> None:
    fed = make_demo(tmp_path / "demo", now=NOW)
    doc = fed.directory.to_document()
    uses = [k.get("use") for m in doc["members"] for k in m["keys"]]
    assert set(uses) == {None, "encryption"} and uses.count("encryption") == len(doc["members"])
    # `use: signing` written by hand is the same content: it signs the same bytes
    text = yaml.safe_load(fed.directory_path.read_text())
    text["members"][0]["keys"][0]["use"] = "signing"
    fed.directory_path.write_text(yaml.safe_dump(text))
    assert load_verified_directory(fed.directory_path, fed.authority_pub) == fed.directory
    # but turning a signing key into an encryption key is a change of content
    text["members"][0]["keys"][0]["use"] = "encryption"
    fed.directory_path.write_text(yaml.safe_dump(text))
    with pytest.raises(DirectoryError):
        load_verified_directory(fed.directory_path, fed.authority_pub)


def test_demo_members_can_all_receive_encrypted_alerts(tmp_path: Path) -> None:
    fed = make_demo(tmp_path / "demo", now=NOW)
    for member, key in fed.decryption_keys.items():
        assert stat.S_IMODE((fed.keys_dir / f"{member}.enc.key").stat().st_mode) == 0o600
        assert fed.directory.encryption_key_for(member, NOW).key_id == key.key_id
    a = example("corruption-indicator", producer="BE-FEDPOL")
    record = seal_encrypted(a, fed.signers["BE-FEDPOL"], fed.directory, SCHEMAS)
    env = unseal_any(record.key, record.value, record.headers, fed.directory, SCHEMAS, CODES)
    assert not isinstance(env, type(None))
    for member in a.header.release_to:
        key = load_decryption_key(fed.keys_dir / f"{member}.enc.key", member)
        assert decrypt(env, Decryptor.of([key]), SCHEMAS, CODES).alert == a  # type: ignore[arg-type]


# -- key files and the CLI -------------------------------------------------------------------


def test_key_files(tmp_path: Path) -> None:
    generate_keypair("NL-POLICE", tmp_path)
    key_path, pub_path, key = generate_encryption_keypair("NL-POLICE", tmp_path)
    assert key_path.name == "NL-POLICE.enc.key" and pub_path.name == "NL-POLICE.enc.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_decryption_key(key_path, "NL-POLICE").key_id == key.key_id
    assert member_of_encryption_key_file(key_path) == "NL-POLICE"
    assert member_of_encryption_key_file(tmp_path / "NL-POLICE.key") is None
    assert set(load_keyring(tmp_path).keys) == {SigningKey.from_pem(
        "NL-POLICE", (tmp_path / "NL-POLICE.key").read_bytes()).key_id}  # .enc.pub is not a signing key
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_encryption_keypair("NL-POLICE", tmp_path)
    key_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_decryption_key(key_path, "NL-POLICE")
    with pytest.raises(KeyFileError, match="not an X25519 private key"):
        load_decryption_key(tmp_path / "NL-POLICE.key", "NL-POLICE")


def bus(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


def test_keygen_writes_both_pairs_or_the_one_asked_for(tmp_path: Path) -> None:
    code, text = bus("keygen", "--member", "NL-POLICE", "--out", str(tmp_path))
    assert code == 0, text
    for name in ("NL-POLICE.key", "NL-POLICE.enc.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    enc = load_decryption_key(tmp_path / "NL-POLICE.enc.key", "NL-POLICE")
    assert f"encryption key id {enc.key_id}" in text and "signing key id" in text
    code, text = bus("keygen", "--member", "NL-POLICE", "--out", str(tmp_path / "rotated"), "--kind", "encryption")
    assert code == 0 and sorted(p.name for p in (tmp_path / "rotated").iterdir()) == [
        "NL-POLICE.enc.key", "NL-POLICE.enc.pub"]


def test_add_key_reads_the_kind_from_the_key(tmp_path: Path) -> None:
    fed = tmp_path / "federation.yaml"
    assert bus("federation", "init", "--authority-key", str(tmp_path / "auth"), "--file", str(fed))[0] == 0
    common = ["--file", str(fed), "--authority-key", str(tmp_path / "auth" / "authority.key")]
    assert bus("federation", "add-member", *common, "--id", "NL-POLICE", "--name", "Politie",
               "--country", "NL", "--kind", "police")[0] == 0
    bus("keygen", "--member", "NL-POLICE", "--out", str(tmp_path / "keys"))
    enc_pub = tmp_path / "keys" / "NL-POLICE.enc.pub"
    code, text = bus("federation", "add-key", *common, "--member", "NL-POLICE", "--public-key", str(enc_pub),
                     "--use", "signing")
    assert code == 2 and "is an encryption key; --use asked for signing" in text, text
    code, text = bus("federation", "add-key", *common, "--member", "NL-POLICE", "--public-key", str(enc_pub))
    assert code == 0 and "added encryption key" in text, text
    code, text = bus("federation", "add-key", *common, "--member", "NL-POLICE",
                     "--public-key", str(tmp_path / "keys" / "NL-POLICE.pub"))
    assert code == 0 and "added signing key" in text, text
    directory = load_verified_directory(fed, tmp_path / "auth" / "authority.pub")
    enc = load_decryption_key(tmp_path / "keys" / "NL-POLICE.enc.key", "NL-POLICE")
    assert directory.encryption_key_for("NL-POLICE", datetime.now(UTC)).key_id == enc.key_id
    code, text = bus("federation", "verify", "--file", str(fed), "--authority-pub",
                     str(tmp_path / "auth" / "authority.pub"))
    assert code == 0 and "encryption" in text and enc.key_id in text and "2 key(s)" in text


def test_encryption_key_lookup_errors_name_member_directory_and_time(tmp_path: Path) -> None:
    fed = make_demo(tmp_path / "demo", now=NOW)
    with pytest.raises(EncryptionError, match=r"FR-DOUANE is not a member of federation directory EPA v1"):
        fed.directory.encryption_key_for("FR-DOUANE", NOW)
    with pytest.raises(EncryptionError, match=r"NL-POLICE has no encryption key valid at .* \(bus keygen"):
        fed.directory.encryption_key_for("NL-POLICE", NOW + 400 * DAY)


def test_watched_directory_follows_rotations_and_keeps_the_last_good_file(tmp_path: Path) -> None:
    structlog.reset_defaults()  # an earlier CLI test may have bound structlog to a closed stream
    fed = make_demo(tmp_path / "demo", now=NOW)
    watched = WatchedDirectory(fed.directory_path, fed.authority_pub)
    old = fed.decryption_keys["NL-POLICE"]
    assert watched.encryption_key_for("NL-POLICE", NOW).key_id == old.key_id
    new = DecryptionKey.generate("NL-POLICE")
    from bus.adapters.federation_file import load_authority_signing_key

    authority = load_authority_signing_key(fed.authority_key)
    rotated = add_key(fed.directory, "NL-POLICE", MemberKey.for_public_key(new.public, NOW, NOW + 30 * DAY))
    write_directory_file(fed.directory_path, sign_directory(rotated, authority))
    assert watched.encryption_key_for("NL-POLICE", NOW).key_id == new.key_id  # newest valid key
    fed.directory_path.write_text(fed.directory_path.read_text().replace("Politie", "Polizei"))
    assert watched.encryption_key_for("NL-POLICE", NOW).key_id == new.key_id  # tampered: not used
    assert watched.last_error is not None and "tampered" in watched.last_error
    assert read_directory_file(fed.directory_path).directory.version == rotated.version


# -- producers and readers -------------------------------------------------------------------


def test_connector_settings_and_sealing_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fed = make_demo(tmp_path / "demo", now=NOW)
    with pytest.raises(ValueError, match="go together"):
        PublishSettings(federation=fed.directory_path)
    with pytest.raises(ValueError, match="always needs federation"):
        PublishSettings(encrypt=EncryptMode.ALWAYS)

    from bus.adapters.kafka.memory import MemoryEngine
    from bus.composition import Bus

    engine = MemoryEngine()

    def publisher(options: PublishSettings) -> ReliablePublisher:
        return ReliablePublisher(Bus(engine=engine), fed.signers["BE-FEDPOL"], options,
                                 ConnectorMetrics("test"), threading.Event())

    red = example("corruption-indicator", producer="BE-FEDPOL")
    amber = example("suspicious-container", producer="BE-FEDPOL", tlp="AMBER")
    plain = publisher(PublishSettings())
    assert plain.sealing_problems(amber) == []
    [problem] = plain.sealing_problems(red)
    assert problem.startswith("header: ") and "TLP:RED" in problem and "none was given" in problem

    encrypting = publisher(PublishSettings(federation=fed.directory_path, authority_pub=fed.authority_pub))
    assert encrypting.sealing_problems(red) == []
    nobody = example("corruption-indicator", producer="BE-FEDPOL", release_to=[])
    assert encrypting.sealing_problems(nobody) == [
        "header.release_to: an encrypted alert must name its recipients: list the member ids that may read it"]
    # what it publishes is encrypted under that policy: the record on the topic is an encrypted alert
    engine.create_topic(alert_topic(red.alert_type))
    [receipt] = encrypting.publish([red])
    [record] = [r for r in Bus(engine=engine).read_to_end(receipt.topic) if isinstance(r, Record)]
    assert SCHEMAS.is_encrypted(record.value or b"")


def feed_record(record: object, verified: object, error: VerificationError | None, envelope: object) -> FeedRecord:
    r = record  # a SealedRecord
    return FeedRecord("alerts.corruption-indicator", 0, 0, 0, r.key, r.headers, r.value,  # type: ignore[attr-defined]
                      verified, error, envelope)  # type: ignore[arg-type]


def test_tail_shows_the_clear_facts_of_what_it_cannot_read_and_nothing_else(tmp_path: Path) -> None:
    fed = make_demo(tmp_path / "demo", now=NOW)
    a = example("corruption-indicator", producer="BE-FEDPOL")
    record = seal_encrypted(a, fed.signers["BE-FEDPOL"], fed.directory, SCHEMAS)
    env = unseal_any(record.key, record.value, record.headers, fed.directory, SCHEMAS, CODES)
    closed = VerificationError("encrypted", RejectReason.ENCRYPTED)
    shown = " ".join([row(feed_record(record, None, closed, env)), str(record_dict(feed_record(
        record, None, closed, env)))])
    assert "encrypted" in shown and "TLP:RED" in shown and "BE-CUSTOMS" in shown
    for secret in (a.header.summary[:30], a.subject_reference, "MSCU7482106"):  # type: ignore[attr-defined]
        assert secret not in shown
    opened = decrypt(env, Decryptor.of([fed.decryption_keys["EUROPOL"]]), SCHEMAS, CODES)  # type: ignore[arg-type]
    text = row(feed_record(record, opened, None, env))
    assert "decrypted" in text and a.header.summary[:30] in text
    assert record_dict(feed_record(record, opened, None, env))["encrypted"] is True
