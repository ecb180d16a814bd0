"""The signed federation directory: key resolution rules, signing, files and CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.adapters.federation_file import (
    DirectoryWatcher,
    load_verified_directory,
    make_demo,
    read_directory_file,
    read_state,
    write_directory_file,
)
from bus.adapters.keystore import generate_keypair
from bus.core.keys import SigningKey
from bus.core.trust import (
    DOMAIN,
    DirectoryError,
    FederationDirectory,
    FreshnessPolicy,
    KeyStatus,
    Member,
    MemberKey,
    add_key,
    add_member,
    bump,
    new_directory,
    revoke_key,
    sign_directory,
    verify_directory,
)
from bus.errors import RejectReason, UnknownKeyError, VerificationError

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SC, CI, ON = "suspicious-container", "corruption-indicator", "operation-notice"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> SigningKey:
    return SigningKey.generate("FEDERATION-AUTHORITY")


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {m: SigningKey.generate(m) for m in ("NL-CUSTOMS", "PORT-ROTTERDAM", "EUROPOL")}


def mkey(signer: SigningKey, start: datetime, end: datetime, **extra: Any) -> MemberKey:
    return MemberKey(
        key_id=signer.key_id, public_key=signer.public.to_raw_b64(),
        not_before=start, not_after=end, **extra,
    )


@pytest.fixture(scope="module")
def directory(keys: dict[str, SigningKey]) -> FederationDirectory:
    return FederationDirectory(
        federation_id="EPA", name="European Ports Alliance", version=5, issued_at=T0,
        members=(
            Member(id="NL-CUSTOMS", name="Douane", country="NL", kind="customs",
                   may_publish=(SC, CI, ON),
                   keys=(mkey(keys["NL-CUSTOMS"], T0 - 30 * DAY, T0 + 30 * DAY),)),
            Member(id="PORT-ROTTERDAM", name="Port of Rotterdam", country="NL",
                   kind="port-authority", may_publish=(SC, CI),
                   keys=(mkey(keys["PORT-ROTTERDAM"], T0 - 30 * DAY, T0 + 30 * DAY,
                              revoked_at=T0, revocation_reason="stolen laptop"),)),
            Member(id="EUROPOL", name="Europol", country="EU", kind="eu-agency",
                   may_publish=(SC, CI, ON),
                   keys=(mkey(keys["EUROPOL"], T0 - 30 * DAY, T0 + 30 * DAY),)),
        ),
    )


def reason_of(call: Callable[[], object]) -> RejectReason:
    with pytest.raises(VerificationError) as info:
        call()
    return info.value.reason


# -- resolve: every reason code ----------------------------------------------------------------


def test_resolve_returns_the_members_key(directory, keys):
    pub = directory.resolve(keys["NL-CUSTOMS"].key_id, "NL-CUSTOMS", SC, T0)
    assert pub.key_id == keys["NL-CUSTOMS"].key_id


def test_unknown_key(directory):
    with pytest.raises(UnknownKeyError) as info:
        directory.resolve("0" * 32, "NL-CUSTOMS", SC, T0)
    assert info.value.reason is RejectReason.UNKNOWN_KEY


def test_key_owned_by_another_member(directory, keys):
    kid = keys["EUROPOL"].key_id
    with pytest.raises(VerificationError) as info:
        directory.resolve(kid, "NL-CUSTOMS", SC, T0)
    assert info.value.reason is RejectReason.KEY_NOT_OWNED
    assert "EUROPOL" in info.value.detail and "NL-CUSTOMS" in info.value.detail


def test_type_not_allowed(directory, keys):
    kid = keys["PORT-ROTTERDAM"].key_id
    assert reason_of(
        lambda: directory.resolve(kid, "PORT-ROTTERDAM", ON, T0 - DAY)
    ) is RejectReason.TYPE_NOT_ALLOWED
    directory.resolve(kid, "PORT-ROTTERDAM", CI, T0 - DAY)  # allowed type, same key


def test_key_not_yet_valid_and_expired_boundaries(directory, keys):
    kid = keys["NL-CUSTOMS"].key_id
    start, end = T0 - 30 * DAY, T0 + 30 * DAY
    tiny = timedelta(microseconds=1)
    assert reason_of(lambda: directory.resolve(kid, "NL-CUSTOMS", SC, start - tiny)) \
        is RejectReason.KEY_NOT_YET_VALID
    directory.resolve(kid, "NL-CUSTOMS", SC, start)  # not_before is inclusive
    directory.resolve(kid, "NL-CUSTOMS", SC, end - tiny)
    assert reason_of(lambda: directory.resolve(kid, "NL-CUSTOMS", SC, end)) \
        is RejectReason.KEY_EXPIRED  # not_after is exclusive


def test_revocation_applies_from_its_time_on(directory, keys):
    kid = keys["PORT-ROTTERDAM"].key_id
    directory.resolve(kid, "PORT-ROTTERDAM", SC, T0 - timedelta(seconds=1))  # before: still good
    for created in (T0, T0 + DAY):
        with pytest.raises(VerificationError) as info:
            directory.resolve(kid, "PORT-ROTTERDAM", SC, created)
        assert info.value.reason is RejectReason.KEY_REVOKED
        assert "stolen laptop" in info.value.detail


def test_resolve_accepts_any_timezone_but_not_naive(directory, keys):
    kid = keys["NL-CUSTOMS"].key_id
    directory.resolve(kid, "NL-CUSTOMS", SC, T0.astimezone(timezone(timedelta(hours=2))))
    with pytest.raises(TypeError):
        directory.resolve(kid, "NL-CUSTOMS", SC, T0.replace(tzinfo=None))


def test_rotation_overlap_then_only_the_new_key(directory, keys):
    old = keys["NL-CUSTOMS"]  # valid until T0 + 30 days
    new = SigningKey.generate("NL-CUSTOMS")
    rotated = add_key(directory, "NL-CUSTOMS", mkey(new, T0 + 20 * DAY, T0 + 400 * DAY))
    assert rotated.version == directory.version + 1

    def ok(signer: SigningKey, at: datetime) -> bool:
        try:
            rotated.resolve(signer.key_id, "NL-CUSTOMS", SC, at)
        except VerificationError:
            return False
        return True

    assert ok(old, T0 + 10 * DAY) and not ok(new, T0 + 10 * DAY)  # before the overlap
    assert ok(old, T0 + 25 * DAY) and ok(new, T0 + 25 * DAY)  # overlap: both accepted
    assert not ok(old, T0 + 30 * DAY) and ok(new, T0 + 30 * DAY)  # old expired
    assert reason_of(lambda: rotated.resolve(old.key_id, "NL-CUSTOMS", SC, T0 + 31 * DAY)) \
        is RejectReason.KEY_EXPIRED


def test_key_status_at():
    signer = SigningKey.generate("X")
    key = mkey(signer, T0, T0 + DAY, revoked_at=T0 + DAY / 2)
    assert key.status_at(T0 - DAY) is KeyStatus.NOT_YET_VALID
    assert key.status_at(T0) is KeyStatus.VALID
    assert key.status_at(T0 + DAY / 2) is KeyStatus.REVOKED
    assert key.status_at(T0 + 2 * DAY) is KeyStatus.REVOKED  # revocation is the louder fact
    assert mkey(signer, T0, T0 + DAY).status_at(T0 + DAY) is KeyStatus.EXPIRED


# -- model validation ------------------------------------------------------------------------


def test_key_id_must_be_the_thumbprint(keys):
    a, b = keys["NL-CUSTOMS"], keys["EUROPOL"]
    with pytest.raises(ValueError, match="thumbprint"):
        MemberKey(key_id=a.key_id, public_key=b.public.to_raw_b64(),
                  not_before=T0, not_after=T0 + DAY)
    with pytest.raises(ValueError, match="base64"):
        MemberKey(key_id=a.key_id, public_key="not-a-key", not_before=T0, not_after=T0 + DAY)


@pytest.mark.parametrize("fields", [
    {"not_before": T0, "not_after": T0},  # empty window
    {"not_before": T0.replace(tzinfo=None), "not_after": T0 + DAY},  # naive
    {"not_before": T0, "not_after": T0 + DAY, "revocation_reason": "why?"},  # reason, no time
])
def test_bad_key_windows(keys, fields):
    s = keys["NL-CUSTOMS"]
    with pytest.raises(ValueError):
        MemberKey(key_id=s.key_id, public_key=s.public.to_raw_b64(), **fields)


@pytest.mark.parametrize("fields", [
    {"id": "nl-customs"}, {"id": "NL--CUSTOMS"}, {"country": "XX"}, {"country": "NLD"},
    {"country": "EU"},  # EU is for eu-agency only
    {"kind": "navy"}, {"may_publish": ("weather-report",)}, {"may_publish": (SC, SC)},
    {"name": ""},
])
def test_bad_members(fields):
    base: dict[str, Any] = {"id": "NL-CUSTOMS", "name": "Douane", "country": "NL",
                            "kind": "customs", "may_publish": (SC,)}
    with pytest.raises(ValueError):
        Member(**{**base, **fields})


def test_member_ids_and_key_ids_are_unique(directory, keys):
    nl = directory.member("NL-CUSTOMS")
    assert nl is not None
    with pytest.raises(ValueError, match="appears twice"):
        FederationDirectory(federation_id="EPA", name="x", version=1, issued_at=T0,
                            members=(nl, nl))
    clone = Member(id="BE-CUSTOMS", name="Douane BE", country="BE", kind="customs",
                   keys=nl.keys)
    with pytest.raises(ValueError, match="listed for both"):
        FederationDirectory(federation_id="EPA", name="x", version=1, issued_at=T0,
                            members=(nl, clone))
    with pytest.raises(ValueError):
        FederationDirectory(federation_id="EPA", name="x", version=0, issued_at=T0)


# -- canonical bytes and signing ---------------------------------------------------------------


def test_canonical_bytes_are_deterministic(directory):
    raw = directory.canonical_bytes()
    assert raw == FederationDirectory.model_validate(json.loads(raw)).canonical_bytes()
    text = raw.decode()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False).encode()
    assert '"issued_at":"2026-03-01T12:00:00Z"' in text
    assert directory.signing_input() == DOMAIN + raw
    # the same instant written with another offset signs the same bytes
    shifted = FederationDirectory.model_validate(
        {**directory.to_document(), "issued_at": "2026-03-01T14:00:00+02:00"}
    )
    assert shifted.canonical_bytes() == raw


def test_sign_and_verify(directory, authority):
    signed = sign_directory(directory, authority)
    assert signed.signature is not None
    assert signed.signature.authority_key_id == authority.key_id
    assert verify_directory(signed, authority.public) == directory
    trusted = [SigningKey.generate("A").public, authority.public]
    assert verify_directory(signed, trusted) == directory
    assert verify_directory(signed, authority.public, min_version=5) == directory


def test_unsigned_directory_is_refused(directory, authority):
    with pytest.raises(DirectoryError, match="unsigned") as info:
        unsigned = sign_directory(directory, authority).model_copy(update={"signature": None})
        verify_directory(unsigned, authority.public)
    assert info.value.problem == "unsigned"


def test_unknown_authority_is_refused(directory, authority):
    impostor = SigningKey.generate("FEDERATION-AUTHORITY")
    with pytest.raises(DirectoryError, match="not a trusted") as info:
        verify_directory(sign_directory(directory, impostor), authority.public)
    assert info.value.problem == "unknown-authority"


def test_tampered_content_is_refused(directory, authority):
    signed = sign_directory(directory, authority)
    europol = directory.member("EUROPOL")
    assert europol is not None
    tampered = signed.model_copy(update={"directory": directory.model_copy(
        update={"members": directory.members[:2]})})
    with pytest.raises(DirectoryError, match="tampered") as info:
        verify_directory(tampered, authority.public)
    assert info.value.problem == "bad-signature"
    garbage = signed.model_copy(update={"signature": signed.signature.model_copy(
        update={"signature": "!!not base64!!"})})
    with pytest.raises(DirectoryError, match="tampered"):
        verify_directory(garbage, authority.public)


def test_rollback_is_refused(directory, authority):
    signed = sign_directory(directory, authority)
    with pytest.raises(DirectoryError, match="older than version 6") as info:
        verify_directory(signed, authority.public, min_version=6)
    assert info.value.problem == "rollback"


def test_domain_separation(directory, authority):
    """A signature over the bare JSON (no domain prefix) is not a directory signature."""
    import base64

    signed = sign_directory(directory, authority)
    bare = base64.b64encode(authority.sign(directory.canonical_bytes())).decode()
    forged = signed.model_copy(update={"signature": signed.signature.model_copy(
        update={"signature": bare})})
    with pytest.raises(DirectoryError):
        verify_directory(forged, authority.public)


# -- immutable updates ---------------------------------------------------------------------


def test_updates_bump_the_version_and_leave_the_original_alone(directory, keys):
    member = Member(id="BE-FEDPOL", name="Federale Politie", country="BE", kind="police",
                    may_publish=(SC, CI, ON))
    d1 = add_member(directory, member, issued_at=T0 + DAY)
    signer = SigningKey.generate("BE-FEDPOL")
    d2 = add_key(d1, "BE-FEDPOL", mkey(signer, T0, T0 + 365 * DAY), issued_at=T0 + DAY)
    d3 = revoke_key(d2, "BE-FEDPOL", signer.key_id, at=T0 + 10 * DAY, reason="rotated early",
                    issued_at=T0 + DAY)
    d4 = bump(d3, issued_at=T0 + DAY)
    assert [d.version for d in (directory, d1, d2, d3, d4)] == [5, 6, 7, 8, 9]
    assert directory.member("BE-FEDPOL") is None and d1.member("BE-FEDPOL") is not None
    d2.resolve(signer.key_id, "BE-FEDPOL", ON, T0 + 20 * DAY)
    assert reason_of(lambda: d3.resolve(signer.key_id, "BE-FEDPOL", ON, T0 + 20 * DAY)) \
        is RejectReason.KEY_REVOKED
    d3.resolve(signer.key_id, "BE-FEDPOL", ON, T0 + 9 * DAY)
    assert d4.members == d3.members


def test_update_errors(directory, keys):
    nl = directory.member("NL-CUSTOMS")
    assert nl is not None
    with pytest.raises(DirectoryError, match="already in the directory"):
        add_member(directory, nl)
    with pytest.raises(DirectoryError, match="no member"):
        add_key(directory, "XX-NOBODY", mkey(SigningKey.generate("X"), T0, T0 + DAY))
    with pytest.raises(DirectoryError, match="already listed for EUROPOL"):
        add_key(directory, "NL-CUSTOMS", directory.members[2].keys[0])
    with pytest.raises(DirectoryError, match="has no key"):
        revoke_key(directory, "NL-CUSTOMS", "f" * 32, at=T0, reason="x")
    kid = keys["PORT-ROTTERDAM"].key_id  # revoked at T0
    with pytest.raises(DirectoryError, match="only be moved earlier"):
        revoke_key(directory, "PORT-ROTTERDAM", kid, at=T0 + DAY, reason="later")
    earlier = revoke_key(directory, "PORT-ROTTERDAM", kid, at=T0 - DAY, reason="earlier")
    assert earlier.members[1].keys[0].revoked_at == T0 - DAY


def test_new_directory():
    d = new_directory("EPA", "European Ports Alliance", issued_at=T0)
    assert (d.version, d.members) == (1, ())


# -- freshness ----------------------------------------------------------------------------


def test_freshness_defaults_and_reasons():
    policy = FreshnessPolicy()
    now = T0
    assert policy.max_future_skew == timedelta(minutes=5) and policy.max_age == timedelta(days=7)
    policy.check(now, None, now)
    policy.check(now + timedelta(minutes=5), None, now)  # exactly at the skew limit
    policy.check(now - timedelta(days=7), now + DAY, now)  # exactly max age
    assert reason_of(lambda: policy.check(now + timedelta(minutes=5, seconds=1), None, now)) \
        is RejectReason.FUTURE
    assert reason_of(lambda: policy.check(now - timedelta(days=7, seconds=1), None, now)) \
        is RejectReason.STALE
    assert reason_of(lambda: policy.check(now - DAY, now, now)) is RejectReason.EXPIRED
    assert reason_of(lambda: policy.check(now - DAY, now - timedelta(seconds=1), now)) \
        is RejectReason.EXPIRED


def test_freshness_is_configurable():
    strict = FreshnessPolicy(max_future_skew=timedelta(0), max_age=timedelta(hours=1))
    assert reason_of(lambda: strict.check(T0 + timedelta(seconds=1), None, T0)) \
        is RejectReason.FUTURE
    assert reason_of(lambda: strict.check(T0 - timedelta(hours=2), None, T0)) \
        is RejectReason.STALE
    with pytest.raises(ValueError):
        FreshnessPolicy(max_age=timedelta(0))


# -- the file adapter -----------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path):
    return make_demo(tmp_path / "demo", now=T0)


def test_demo_federation(demo):
    assert demo.directory_path.is_file() and demo.authority_pub.is_file()
    assert stat.S_IMODE(demo.authority_key.stat().st_mode) == 0o600
    for member in demo.signers:
        key_file = demo.keys_dir / f"{member}.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (demo.keys_dir / f"{member}.pub").is_file()
    d = load_verified_directory(demo.directory_path, demo.authority_pub)
    assert d == demo.directory and len(d.members) == 12
    for member, signer in demo.signers.items():
        allowed = d.member(member).may_publish  # type: ignore[union-attr]
        d.resolve(signer.key_id, member, allowed[0], T0)
    ports = [m for m in d.members if m.kind == "port-authority"]
    assert ports and all(ON not in m.may_publish for m in ports)
    op = demo.signers["TERMINAL-OPERATOR-X"]
    assert reason_of(lambda: d.resolve(op.key_id, "TERMINAL-OPERATOR-X", ON, T0)) \
        is RejectReason.TYPE_NOT_ALLOWED
    hamburg_old = d.member("PORT-HAMBURG").keys[0]  # type: ignore[union-attr]
    assert hamburg_old.status_at(T0) is KeyStatus.REVOKED
    assert not (demo.keys_dir / "AUTHORITY.key").exists()


def test_demo_refuses_to_overwrite(demo):
    with pytest.raises(DirectoryError, match="already exists"):
        make_demo(demo.directory_path.parent, now=T0)
    make_demo(demo.directory_path.parent, now=T0, overwrite=True)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _mutate(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    text = str(value)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return (when + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if text in (SC, CI, ON):
        return next(t for t in (SC, CI, ON) if t != text)
    if text == "NL":
        return "BE"
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def test_changing_any_field_of_the_yaml_is_detected(demo):
    original = yaml.safe_load(demo.directory_path.read_text())
    paths = list(_leaves(original))
    assert len(paths) > 100
    survived = []
    for path in paths:
        doc = copy.deepcopy(original)
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = _mutate(node[path[-1]])
        demo.directory_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            load_verified_directory(demo.directory_path, demo.authority_pub)
        except DirectoryError as exc:
            assert str(demo.directory_path) in str(exc)
        else:
            survived.append(path)
    assert survived == []


def test_valid_but_unsigned_change_is_tampering(demo):
    """Granting a port authority operation-notice is well-formed, so only the signature stops it."""
    doc = yaml.safe_load(demo.directory_path.read_text())
    port = next(m for m in doc["members"] if m["id"] == "PORT-ROTTERDAM")
    port["may_publish"].append(ON)
    demo.directory_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DirectoryError, match="tampered") as info:
        load_verified_directory(demo.directory_path, demo.authority_pub)
    assert info.value.problem == "bad-signature"


def test_comments_are_not_content(demo):
    text = demo.directory_path.read_text()
    demo.directory_path.write_text("# reviewed by the duty officer\n" + text)
    load_verified_directory(demo.directory_path, demo.authority_pub)


def test_unsigned_and_wrong_authority_files(demo, tmp_path):
    doc = yaml.safe_load(demo.directory_path.read_text())
    del doc["signature"]
    unsigned = tmp_path / "unsigned.yaml"
    unsigned.write_text(yaml.safe_dump(doc))
    with pytest.raises(DirectoryError, match="unsigned"):
        load_verified_directory(unsigned, demo.authority_pub)
    _, other_pub, _ = generate_keypair("OTHER", tmp_path / "other")
    with pytest.raises(DirectoryError, match="not a trusted federation authority key"):
        load_verified_directory(demo.directory_path, other_pub)
    # several authority keys may be trusted at once (authority rotation)
    load_verified_directory(demo.directory_path, [other_pub, demo.authority_pub])


def test_file_errors_name_the_file(tmp_path, demo):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DirectoryError, match=re.escape(str(missing))):
        load_verified_directory(missing, demo.authority_pub)
    broken = tmp_path / "broken.yaml"
    broken.write_text("members: [unclosed\n")
    with pytest.raises(DirectoryError, match=re.escape(str(broken))):
        read_directory_file(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(DirectoryError, match="mapping"):
        read_directory_file(listy)
    extra = tmp_path / "extra.yaml"
    doc = yaml.safe_load(demo.directory_path.read_text())
    doc["surprise"] = 1
    extra.write_text(yaml.safe_dump(doc))
    with pytest.raises(DirectoryError, match="surprise"):
        read_directory_file(extra)
    from bus.errors import KeyFileError

    with pytest.raises(KeyFileError, match=r"nope\.pub"):
        load_verified_directory(demo.directory_path, tmp_path / "nope.pub")


def _resign(demo, directory: FederationDirectory) -> None:
    from bus.adapters.federation_file import load_authority_signing_key

    signer = load_authority_signing_key(demo.authority_key)
    write_directory_file(demo.directory_path, sign_directory(directory, signer))


def test_rollback_protection_with_the_state_file(demo, tmp_path):
    state = tmp_path / "state" / "accepted.json"
    v1_text = demo.directory_path.read_text()
    assert load_verified_directory(demo.directory_path, demo.authority_pub, state).version == 1
    assert read_state(state).version == 1  # type: ignore[union-attr]
    v2 = bump(demo.directory, issued_at=T0 + DAY)
    _resign(demo, v2)
    assert load_verified_directory(demo.directory_path, demo.authority_pub, state).version == 2
    assert read_state(state).version == 2  # type: ignore[union-attr]
    # replay the old, validly signed file: refused
    demo.directory_path.write_text(v1_text)
    with pytest.raises(DirectoryError, match="version 1 is older than version 2") as info:
        load_verified_directory(demo.directory_path, demo.authority_pub, state)
    assert info.value.problem == "rollback"
    assert read_state(state).version == 2  # type: ignore[union-attr]
    # the same version number with other content: refused too
    other_v2 = bump(demo.directory, issued_at=T0 + 2 * DAY)
    _resign(demo, other_v2)
    with pytest.raises(DirectoryError, match="different content") as info:
        load_verified_directory(demo.directory_path, demo.authority_pub, state)
    assert info.value.problem == "replaced"
    # without a state file nothing is remembered (first start of a reader)
    demo.directory_path.write_text(v1_text)
    load_verified_directory(demo.directory_path, demo.authority_pub)


def test_damaged_or_foreign_state_file_fails_closed(demo, tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(DirectoryError, match=re.escape(str(state))):
        load_verified_directory(demo.directory_path, demo.authority_pub, state)
    state.write_text(json.dumps({"federation_id": "OTHER", "version": 1, "digest": "x",
                                 "accepted_at": "2026-01-01T00:00:00Z"}))
    with pytest.raises(DirectoryError, match="federation OTHER"):
        load_verified_directory(demo.directory_path, demo.authority_pub, state)


def test_watcher_detects_content_changes_only(demo):
    watcher = DirectoryWatcher(demo.directory_path)
    assert watcher.changed() is False
    text = demo.directory_path.read_text()
    demo.directory_path.write_text(text)  # same bytes, new mtime
    os.utime(demo.directory_path)
    assert watcher.changed() is False
    _resign(demo, bump(demo.directory, issued_at=T0 + DAY))
    assert watcher.changed() is True
    assert watcher.changed() is False  # reported once
    demo.directory_path.unlink()
    assert watcher.changed() is True
    demo.directory_path.write_text(text)
    assert watcher.changed() is True


def test_committed_example_is_signed_by_the_committed_authority():
    path, pub = REPO / "federation" / "federation.yaml", REPO / "federation" / "authority.pub"
    directory = load_verified_directory(path, pub)
    ids = {m.id for m in directory.members}
    assert {"EUROPOL", "NL-CUSTOMS", "BE-FEDPOL", "PORT-ANTWERP-BRUGES", "EMPACT-CCH"} <= ids
    assert path.read_text().startswith("#")
    assert not list((REPO / "federation").glob("*.key"))


# -- CLI ----------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from bus.cli import app

    result = CliRunner().invoke(app, ["federation", *args], env={"NO_COLOR": "1"})
    return result.exit_code, " ".join(result.output.split())


def test_cli_round_trip(tmp_path):
    fed, auth = tmp_path / "federation.yaml", tmp_path / "authority"
    code, text = run("init", "--authority-key", str(auth), "--file", str(fed),
                     "--name", "European Ports Alliance")
    assert code == 0, text
    key = auth / "authority.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pub = auth / "authority.pub"
    common = ["--file", str(fed), "--authority-key", str(key)]

    code, text = run("add-member", *common, "--id", "NL-CUSTOMS", "--name", "Douane Nederland",
                     "--country", "NL", "--kind", "customs", "--may-publish", SC,
                     "--may-publish", ON)
    assert code == 0, text
    code, text = run("add-member", *common, "--id", "BAD", "--name", "x", "--country", "XX",
                     "--kind", "customs")
    assert code == 2 and "ISO 3166" in text

    _, member_pub, signer = generate_keypair("NL-CUSTOMS", tmp_path / "keys")
    code, text = run("add-key", *common, "--member", "NL-CUSTOMS", "--public-key", str(member_pub),
                     "--not-before", "2026-01-01", "--not-after", "2030-01-01T00:00:00Z")
    assert code == 0 and signer.key_id in text, text
    code, text = run("add-key", *common, "--member", "NL-CUSTOMS", "--public-key", str(member_pub),
                     "--not-before", "2026-01-01T10:00")
    assert code == 2 and "offset" in text

    code, text = run("verify", "--file", str(fed), "--authority-pub", str(pub),
                     "--at", "2027-01-01")
    assert code == 0, text
    assert "version 3" in text and "NL-CUSTOMS" in text and signer.key_id in text
    assert "valid" in text

    code, text = run("revoke-key", *common, "--member", "NL-CUSTOMS", "--key-id", signer.key_id,
                     "--at", "2027-06-01T00:00:00Z", "--reason", "laptop stolen")
    assert code == 0, text
    code, text = run("verify", "--file", str(fed), "--authority-pub", str(pub),
                     "--at", "2027-07-01")
    assert code == 0 and "version 4" in text and "revoked" in text and "laptop stolen" in text
    d = load_verified_directory(fed, pub)
    d.resolve(signer.key_id, "NL-CUSTOMS", ON, datetime(2027, 5, 1, tzinfo=UTC))
    after = datetime(2027, 6, 2, tzinfo=UTC)
    assert reason_of(lambda: d.resolve(signer.key_id, "NL-CUSTOMS", ON, after)) \
        is RejectReason.KEY_REVOKED


def test_cli_add_key_refuses_a_window_that_has_already_ended(tmp_path):
    """A key whose window lies wholly in the past would verify no new alert: a typo in a year, most
    likely. Refused (the file unchanged) unless --allow-past says it is meant; a window that began
    in the past and is still open is the usual case of a key listed late, and is accepted."""
    fed, auth = tmp_path / "federation.yaml", tmp_path / "authority"
    assert run("init", "--authority-key", str(auth), "--file", str(fed))[0] == 0
    common = ["--file", str(fed), "--authority-key", str(auth / "authority.key")]
    assert run("add-member", *common, "--id", "NL-CUSTOMS", "--name", "Douane", "--country", "NL",
               "--kind", "customs", "--may-publish", SC)[0] == 0
    before = fed.read_bytes()
    _, pub, _ = generate_keypair("NL-CUSTOMS", tmp_path / "keys")
    key = ["--member", "NL-CUSTOMS", "--public-key", str(pub)]

    code, text = run("add-key", *common, *key, "--not-before", "2020-01-01", "--not-after", "2021-01-01")
    assert code == 2, text
    assert "--not-after 2021-01-01T00:00:00Z has already passed" in text and "--allow-past" in text
    code, text = run("add-key", *common, *key, "--not-before", "2020-01-01")  # default end: one year later
    assert code == 2 and "--not-after 2020-12-31T00:00:00Z (--not-before + 365 days) has already passed" in text, text
    assert fed.read_bytes() == before

    code, text = run("add-key", *common, *key, "--not-before", "2020-01-01", "--not-after", "2021-01-01",
                     "--allow-past")
    assert code == 0 and "valid 2020-01-01T00:00:00Z .. 2021-01-01T00:00:00Z" in text, text
    _, fresh, signer = generate_keypair("NL-CUSTOMS", tmp_path / "fresh")
    code, text = run("add-key", *common, "--member", "NL-CUSTOMS", "--public-key", str(fresh),
                     "--not-before", "2020-01-01", "--not-after", "2100-01-01")
    assert code == 0 and signer.key_id in text and "warning" not in text, text


def test_cli_refuses_tampered_unsigned_and_rolled_back_files(tmp_path):
    fed, auth = tmp_path / "federation.yaml", tmp_path / "authority"
    assert run("init", "--authority-key", str(auth), "--file", str(fed))[0] == 0
    key, pub = auth / "authority.key", auth / "authority.pub"
    common = ["--file", str(fed), "--authority-key", str(key)]
    state = tmp_path / "state.json"
    verify = ["verify", "--file", str(fed), "--authority-pub", str(pub), "--state", str(state)]
    assert run(*verify)[0] == 0
    v1 = fed.read_text()
    assert run("add-member", *common, "--id", "EUROPOL", "--name", "Europol", "--country", "EU",
               "--kind", "eu-agency", "--may-publish", SC)[0] == 0
    assert run(*verify)[0] == 0  # state now remembers version 2

    fed.write_text(v1)  # an old, validly signed copy comes back
    code, text = run(*verify)
    assert code == 1 and "rollback" in text and "version 1 is older than version 2" in text

    assert run("add-member", *common, "--id", "NL-POLICE", "--name", "Politie", "--country", "NL",
               "--kind", "police")[0] == 0  # version 2 again, from v1: not the accepted one
    code, text = run(*verify)
    assert code == 1 and "different content" in text

    fed.write_text(fed.read_text().replace("Politie", "Polizei"))
    code, text = run("verify", "--file", str(fed), "--authority-pub", str(pub))
    assert code == 1 and "tampered" in text
    code, text = run("add-member", *common, "--id", "DE-CUSTOMS", "--name", "Zoll",
                     "--country", "DE", "--kind", "customs")
    assert code == 2 and "bus federation sign" in text  # edits of an unverified file refused

    code, text = run("sign", *common)  # the authority accepts the hand edit: version + 1
    assert code == 0 and "version 3" in text, text
    code, text = run("sign", *common)
    assert code == 0 and "unchanged" in text
    code, text = run(*verify)
    assert code == 0 and "Polizei" in text and "version 3" in text

    doc = yaml.safe_load(fed.read_text())
    del doc["signature"]
    fed.write_text(yaml.safe_dump(doc))
    code, text = run("verify", "--file", str(fed), "--authority-pub", str(pub))
    assert code == 1 and "unsigned" in text

    _, other_pub, _ = generate_keypair("OTHER", tmp_path / "other")
    assert run("sign", *common)[0] == 0
    code, text = run("verify", "--file", str(fed), "--authority-pub", str(other_pub))
    assert code == 1 and "not a trusted federation authority key" in text


def test_cli_demo(tmp_path):
    out = tmp_path / "demo"
    code, text = run("demo", "--out", str(out))
    assert code == 0, text
    assert stat.S_IMODE((out / "authority.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "keys" / "NL-CUSTOMS.key").stat().st_mode) == 0o600
    code, text = run("verify", "--file", str(out / "federation.yaml"),
                     "--authority-pub", str(out / "authority.pub"))
    assert code == 0 and "12 member(s)" in text and "revoked" in text and "expired" in text
    assert run("demo", "--out", str(out))[0] == 2


def test_installed_bus_command_writes_a_0600_authority_key(tmp_path):
    bus = REPO / ".venv" / "bin" / "bus"
    if not bus.exists():
        pytest.skip("no .venv/bin/bus")
    result = subprocess.run(
        [str(bus), "federation", "init", "--authority-key", str(tmp_path / "auth"),
         "--file", str(tmp_path / "federation.yaml")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "auth" / "authority.key").stat().st_mode) == 0o600
    assert read_directory_file(tmp_path / "federation.yaml").signature is not None


def test_resolve_follows_model_copy(directory, keys):
    """A copied directory with fewer members must not resolve the removed member's key."""
    directory.resolve(keys["EUROPOL"].key_id, "EUROPOL", SC, T0)  # warm any cache
    smaller = directory.model_copy(update={"members": directory.members[:2]})
    with pytest.raises(UnknownKeyError):
        smaller.resolve(keys["EUROPOL"].key_id, "EUROPOL", SC, T0)


def test_caching_does_not_change_equality(directory, keys):
    fresh = FederationDirectory.model_validate(directory.model_dump())
    directory.resolve(keys["NL-CUSTOMS"].key_id, "NL-CUSTOMS", SC, T0)
    assert fresh == directory and hash(fresh) == hash(directory)
