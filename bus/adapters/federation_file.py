"""The federation directory on disk: YAML file, authority key files, rollback state.

The YAML file holds the directory content at the top level and the authority's
signature under `signature:`; comments are not signed (they are not content).
Every error names the file it is about, because an operator has to fix a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from bus.adapters.keystore import (
    generate_encryption_keypair,
    generate_keypair,
    load_signing_key,
    write_new_keypair,
)
from bus.adapters.private_file import write_private
from bus.core.keys import DecryptionKey, EncryptionPublicKey, PublicKey, SigningKey
from bus.core.trust import (
    DirectoryError,
    DirectorySignature,
    FederationDirectory,
    FederationRouter,
    Member,
    MemberKey,
    SignedDirectory,
    rfc3339,
    sign_directory,
    utcnow,
    verify_directory,
)
from bus.errors import BusError, KeyFileError

log = structlog.get_logger("bus.federation")

AUTHORITY = "FEDERATION-AUTHORITY"
"""Name carried by the authority's SigningKey (it is not a member)."""

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

AUTHORITY_KEY_FILE = "authority.key"
AUTHORITY_PUB_FILE = "authority.pub"


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
    )


# -- directory file --------------------------------------------------------------------------


def parse_directory(data: Any, source: str = "<data>") -> SignedDirectory:
    """A loaded YAML/JSON document -> SignedDirectory (signature None if absent)."""
    if not isinstance(data, dict):
        raise DirectoryError(f"{source}: expected a mapping at the top level", "invalid")
    data = dict(data)
    raw_sig = data.pop("signature", None)
    try:
        directory = FederationDirectory.model_validate(data)
        signature = None if raw_sig is None else DirectorySignature.model_validate(raw_sig)
    except ValidationError as exc:
        raise DirectoryError(f"{source}: invalid federation directory: {_errors(exc)}") from None
    return SignedDirectory(directory=directory, signature=signature)


def read_directory_file(path: Path) -> SignedDirectory:
    """Parse and validate, without checking the signature (the CLI's edit commands need that)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryError(
            f"cannot read federation directory {path}: {exc.strerror or exc}", "file"
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a safe loader (C if available)
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path}: not valid YAML ({exc})", "invalid") from None
    return parse_directory(data, str(path))


def directory_document(signed: SignedDirectory) -> dict[str, Any]:
    """What goes into the YAML file: unset revocation fields are left out for readability."""
    doc = signed.directory.to_document()
    for holder in [*doc["members"], *doc.get("routers", [])]:
        holder["keys"] = [{k: v for k, v in key.items() if v is not None} for key in holder["keys"]]
    if signed.signature is not None:
        doc["signature"] = signed.signature.model_dump()
    return doc


def _leading_comments(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return ""
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    return "".join(head)


def _atomic_write(path: Path, data: str) -> None:
    """Readers polling the file never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_directory_file(
    path: Path, signed: SignedDirectory, *, header: str | None = None
) -> None:
    """Write atomically; keep the file's leading comment block unless `header` replaces it."""
    if header is None:
        header = _leading_comments(path)
    else:
        header = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.dump(
        directory_document(signed), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    try:
        _atomic_write(path, header + body)
    except OSError as exc:
        raise DirectoryError(f"cannot write {path}: {exc.strerror or exc}", "file") from None


# -- authority keys -----------------------------------------------------------------------


def load_authority_public(paths: Path | Sequence[Path]) -> list[PublicKey]:
    """One or more PEM files (several while the authority itself rotates its key)."""
    keys = []
    for path in [paths] if isinstance(paths, Path | str) else paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(
                f"cannot read authority public key {path}: {exc.strerror or exc}"
            ) from None
        keys.append(PublicKey.from_pem(data, source=str(path)))
    if not keys:
        raise KeyFileError("no federation authority public key given")
    return keys


def load_authority_signing_key(path: Path) -> SigningKey:
    """The authority's private key; refused if group/others can read it."""
    return load_signing_key(path, AUTHORITY)


def generate_authority_key(
    out_dir: Path, *, overwrite: bool = False
) -> tuple[Path, Path, SigningKey]:
    """`authority.key` (0600 from creation) and `authority.pub` in `out_dir`."""
    return write_new_keypair(out_dir / AUTHORITY_KEY_FILE, out_dir / AUTHORITY_PUB_FILE, AUTHORITY,
                             overwrite=overwrite)


# -- rollback state ------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedVersion:
    """The highest directory version a reader accepted, and exactly which content it was."""

    federation_id: str
    version: int
    digest: str
    accepted_at: str


def read_state(path: Path) -> AcceptedVersion | None:
    """None if the file does not exist yet; a damaged file fails closed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DirectoryError(
            f"cannot read directory state file {path}: {exc.strerror or exc}", "file"
        ) from None
    try:
        data = json.loads(text)
        state = AcceptedVersion(
            federation_id=str(data["federation_id"]),
            version=int(data["version"]),
            digest=str(data["digest"]),
            accepted_at=str(data["accepted_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DirectoryError(
            f"directory state file {path} is damaged ({exc}); restore it or, after checking the "
            "directory by hand, delete it",
            "file",
        ) from None
    return state


def write_state(path: Path, state: AcceptedVersion) -> None:
    try:
        _atomic_write(path, json.dumps(state.__dict__, indent=2) + "\n")
    except OSError as exc:
        raise DirectoryError(
            f"cannot write directory state file {path}: {exc.strerror or exc}", "file"
        ) from None


def load_verified_directory(
    path: Path,
    authority_pub_path: Path | Sequence[Path],
    state_path: Path | None = None,
) -> FederationDirectory:
    """The directory, only if signed by the authority and not older than the last accepted one.

    With `state_path`, the highest accepted version (and its content digest) is
    remembered there: a lower version is a rollback, the same version with other
    content is a replaced directory; both are refused. Raises DirectoryError or
    KeyFileError (both BusError) naming the file.
    """
    path = Path(path)
    authority = load_authority_public(authority_pub_path)
    signed = read_directory_file(path)
    state = read_state(Path(state_path)) if state_path is not None else None
    fed = signed.directory.federation_id
    if state is not None and state.federation_id != fed:
        raise DirectoryError(
            f"{path} is for federation {fed} but state file {state_path} remembers "
            f"federation {state.federation_id}",
            "invalid",
        )
    try:
        directory = verify_directory(
            signed, authority, min_version=state.version if state is not None else None
        )
    except DirectoryError as exc:
        raise DirectoryError(f"{path}: {exc}", exc.problem) from None
    digest = directory.digest()
    if state is not None and directory.version == state.version and digest != state.digest:
        raise DirectoryError(
            f"{path}: version {directory.version} was already accepted with different content; "
            "a changed directory must carry a higher version",
            "replaced",
        )
    if state_path is not None and (state is None or directory.version > state.version):
        write_state(
            Path(state_path),
            AcceptedVersion(fed, directory.version, digest, rfc3339(utcnow())),
        )
    return directory


# -- reload detection -------------------------------------------------------------------------


class DirectoryWatcher:
    """`changed()` is True once each time the content of any watched file changes.

    Compares content hashes (the files are small), so a touch without a change does
    not trigger a reload and an atomic replace within one mtime tick still does.
    A missing file counts as a state: disappearing or reappearing is a change.
    """

    def __init__(self, *paths: Path) -> None:
        self.paths = [Path(p) for p in paths]
        self._seen = self._fingerprint()

    def _fingerprint(self) -> tuple[str | None, ...]:
        prints: list[str | None] = []
        for path in self.paths:
            try:
                prints.append(hashlib.sha256(path.read_bytes()).hexdigest())
            except OSError:
                prints.append(None)
        return tuple(prints)

    def changed(self) -> bool:
        now = self._fingerprint()
        if now == self._seen:
            return False
        self._seen = now
        return True


class WatchedDirectory:
    """The verified directory of a file, re-verified whenever the file's content changes.

    For long-running producers (connectors): it is a `RecipientKeys`, so new alerts are
    encrypted to the keys the directory lists now (rotations included). A changed file
    that does not verify is not used: the last verified directory stays in force and the
    problem is logged and kept in `last_error` until a good file arrives.
    """

    def __init__(self, path: Path, authority_pub: Path | Sequence[Path], state_path: Path | None = None) -> None:
        self.path, self.authority_pub, self.state_path = Path(path), authority_pub, state_path
        self._watcher = DirectoryWatcher(self.path)
        self._directory = load_verified_directory(self.path, authority_pub, state_path)
        self._lock = threading.Lock()  # connectors publish from many threads
        self.last_error: str | None = None

    def current(self) -> FederationDirectory:
        with self._lock:
            return self._current()

    def _current(self) -> FederationDirectory:
        if self._watcher.changed():
            try:
                self._directory = load_verified_directory(self.path, self.authority_pub, self.state_path)
                self.last_error = None
            except BusError as exc:
                self.last_error = str(exc)
                log.warning("federation directory not reloaded", path=str(self.path), error=str(exc),
                            version_in_use=self._directory.version)
        return self._directory

    def encryption_key_for(self, member_id: str, at: datetime) -> EncryptionPublicKey:
        return self.current().encryption_key_for(member_id, at)


# -- demo federation --------------------------------------------------------------------------

ALL = ("suspicious-container", "corruption-indicator", "operation-notice")
PORT = ("suspicious-container", "corruption-indicator")

EXAMPLE_MEMBERS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("EUROPOL", "European Union Agency for Law Enforcement Cooperation (Europol)", "EU",
     "eu-agency", ALL),
    ("NL-CUSTOMS", "Douane Nederland (Dutch Customs Administration)", "NL", "customs", ALL),
    ("BE-CUSTOMS", "Algemene Administratie van Douane en Accijnzen (Belgian Customs)", "BE",
     "customs", ALL),
    ("DE-CUSTOMS", "Generalzolldirektion (German Customs)", "DE", "customs", ALL),
    ("ES-CUSTOMS", "Agencia Tributaria, Vigilancia Aduanera (Spanish Customs)", "ES",
     "customs", ALL),
    ("NL-POLICE", "Politie Nederland (Dutch National Police)", "NL", "police", ALL),
    ("BE-FEDPOL", "Federale Politie / Police Fédérale (Belgian Federal Police)", "BE",
     "police", ALL),
    ("PORT-ROTTERDAM", "Port of Rotterdam Authority", "NL", "port-authority", PORT),
    ("PORT-ANTWERP-BRUGES", "Port of Antwerp-Bruges", "BE", "port-authority", PORT),
    ("PORT-HAMBURG", "Hamburg Port Authority", "DE", "port-authority", PORT),
    ("EMPACT-CCH", "EMPACT operational action plan: cannabis, cocaine and heroin", "EU",
     "eu-agency", ("operation-notice",)),
    ("TERMINAL-OPERATOR-X", "Example Container Terminal Operator B.V. (fictitious)", "NL",
     "private-operator", ("suspicious-container",)),
)
"""(id, name, country, kind, may_publish) of the example federation."""

DEMO_HEADER = (
    "Demo federation directory generated by `bus federation demo`.\n"
    "Signed by authority.key in this folder; member private keys are in keys/\n"
    "(<MEMBER>.key signs, <MEMBER>.enc.key decrypts alerts encrypted to the member);\n"
    "the router's key (receipts, audit checkpoints) is in router/."
)
DEMO_ROUTER = "EPA-ROUTER-1"
"""Id of the demo federation's router (its key: router/EPA-ROUTER-1.key)."""


@dataclass(frozen=True)
class DemoFederation:
    directory_path: Path
    authority_key: Path
    authority_pub: Path
    keys_dir: Path
    directory: FederationDirectory
    signers: dict[str, SigningKey]
    """The current signing key of every member (also written as keys/<MEMBER>.key)."""
    decryption_keys: dict[str, DecryptionKey] = field(default_factory=dict)
    """The encryption key of every member (private half also written as keys/<MEMBER>.enc.key)."""
    router_id: str = DEMO_ROUTER
    router_key: Path | None = None
    """The router's private key file (router/<ROUTER-ID>.key)."""
    router_signer: SigningKey | None = None


def make_demo(
    out_dir: Path, *, now: datetime | None = None, overwrite: bool = False, router_signer: SigningKey | None = None,
) -> DemoFederation:
    """A fresh authority, one current key per member, and a signed directory in `out_dir`.

    Also shows the life cycle: NL-CUSTOMS has an older key that expired after a
    rotation overlap, PORT-HAMBURG an older key revoked a week ago. Their private
    halves are thrown away. Every member also gets an encryption key (X25519), listed
    after its signing keys, so alerts can be encrypted to any member. One router,
    EPA-ROUTER-1, gets a signing key for its receipts and audit checkpoints (`router_signer`
    if given: several demo federations can then list one router).
    """
    now = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    out_dir = Path(out_dir)
    directory_path = out_dir / "federation.yaml"
    if directory_path.exists() and not overwrite:
        raise DirectoryError(
            f"{directory_path} already exists; use --force to replace the demo", "file"
        )
    key_path, pub_path, authority = generate_authority_key(out_dir, overwrite=overwrite)
    keys_dir = out_dir / "keys"
    day = timedelta(days=1)
    members: list[Member] = []
    signers: dict[str, SigningKey] = {}
    decryption: dict[str, DecryptionKey] = {}
    for member_id, name, country, kind, may_publish in EXAMPLE_MEMBERS:
        _, _, signer = generate_keypair(member_id, keys_dir, overwrite=overwrite)
        signers[member_id] = signer
        _, _, decryption[member_id] = generate_encryption_keypair(member_id, keys_dir, overwrite=overwrite)
        keys: list[MemberKey] = []
        current_from = now - day
        if member_id == "NL-CUSTOMS":
            old = SigningKey.generate(member_id)
            keys.append(MemberKey.for_public_key(old.public, now - 400 * day, now - 20 * day))
            current_from = now - 30 * day
        elif member_id == "PORT-HAMBURG":
            old = SigningKey.generate(member_id)
            keys.append(
                MemberKey(
                    key_id=old.key_id, public_key=old.public.to_raw_b64(),
                    not_before=now - 200 * day, not_after=now + 165 * day,
                    revoked_at=now - 7 * day,
                    revocation_reason="suspected compromise: workstation stolen",
                )
            )
            current_from = now - 7 * day
        keys.append(MemberKey.for_public_key(signer.public, current_from, now + 365 * day))
        keys.append(MemberKey.for_public_key(decryption[member_id].public, now - day, now + 365 * day))
        members.append(
            Member(id=member_id, name=name, country=country, kind=kind,
                   may_publish=may_publish, keys=tuple(keys))
        )
    if router_signer is None:
        router_key_path, _, router_signer = generate_keypair(DEMO_ROUTER, out_dir / "router", overwrite=overwrite)
    else:
        router_key_path = out_dir / "router" / f"{DEMO_ROUTER}.key"
        write_private(router_key_path, router_signer.to_pem())
    router = FederationRouter(id=DEMO_ROUTER, name="EPA central router",
                              keys=(MemberKey.for_public_key(router_signer.public, now - day, now + 365 * day),))
    directory = FederationDirectory(
        federation_id="EPA", name="European Ports Alliance", version=1, issued_at=now,
        members=tuple(members), routers=(router,),
    )
    write_directory_file(directory_path, sign_directory(directory, authority), header=DEMO_HEADER)
    return DemoFederation(directory_path, key_path, pub_path, keys_dir, directory, signers, decryption,
                          DEMO_ROUTER, router_key_path, router_signer)


__all__ = [
    "AUTHORITY",
    "DEMO_ROUTER",
    "EXAMPLE_MEMBERS",
    "AcceptedVersion",
    "DemoFederation",
    "DirectoryWatcher",
    "WatchedDirectory",
    "directory_document",
    "generate_authority_key",
    "load_authority_public",
    "load_authority_signing_key",
    "load_verified_directory",
    "make_demo",
    "parse_directory",
    "read_directory_file",
    "read_state",
    "write_directory_file",
    "write_state",
]
