"""Key files on disk.

A member has two key pairs, each a private PKCS#8 PEM (mode 0600 from creation)
and a public PEM beside it:

| file | key |
|---|---|
| `<MEMBER>.key` / `<MEMBER>.pub` | Ed25519 signing key |
| `<MEMBER>.enc.key` / `<MEMBER>.enc.pub` | X25519 encryption key (opens alerts encrypted to the member) |

Private keys never leave the member's host: only the `.pub` files go to the
federation authority (`bus federation add-key`).
"""

from __future__ import annotations

import stat
from pathlib import Path

from bus.adapters.private_file import write_private
from bus.core.keyring import Keyring
from bus.core.keys import DecryptionKey, PublicKey, SigningKey
from bus.core.models import MEMBER_ID_RE
from bus.errors import KeyFileError

ENCRYPTION_STEM = ".enc"
"""`<MEMBER>.enc.key` / `<MEMBER>.enc.pub`: the encryption pair beside the signing pair."""


def _check_member(member: str) -> None:
    if not MEMBER_ID_RE.fullmatch(member):
        raise KeyFileError(
            f"member id {member!r} must be upper-case letters/digits separated by '-', e.g. NL-CUSTOMS"
        )


def _write_pair(key_path: Path, pub_path: Path, private_pem: bytes, public_pem: bytes, *,
                overwrite: bool) -> None:
    if key_path.exists() and not overwrite:
        raise KeyFileError(f"{key_path} already exists; refusing to overwrite a private key")
    write_private(key_path, private_pem)
    pub_path.write_bytes(public_pem)


def generate_keypair(member: str, out_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path, SigningKey]:
    """`<MEMBER>.key` and `<MEMBER>.pub`: a fresh Ed25519 signing key."""
    _check_member(member)
    return write_new_keypair(out_dir / f"{member}.key", out_dir / f"{member}.pub", member, overwrite=overwrite)


def write_new_keypair(key_path: Path, pub_path: Path, owner: str, *, overwrite: bool = False
                      ) -> tuple[Path, Path, SigningKey]:
    """A fresh Ed25519 key: private PEM 0600 from creation, public PEM beside it."""
    signer = SigningKey.generate(owner)
    _write_pair(key_path, pub_path, signer.to_pem(), signer.public.to_pem(), overwrite=overwrite)
    return key_path, pub_path, signer


def encryption_key_paths(member: str, out_dir: Path) -> tuple[Path, Path]:
    """(private, public) paths of a member's encryption key pair in `out_dir`."""
    return out_dir / f"{member}{ENCRYPTION_STEM}.key", out_dir / f"{member}{ENCRYPTION_STEM}.pub"


def generate_encryption_keypair(member: str, out_dir: Path, *, overwrite: bool = False
                                ) -> tuple[Path, Path, DecryptionKey]:
    """`<MEMBER>.enc.key` (0600) and `<MEMBER>.enc.pub`: a fresh X25519 encryption key."""
    _check_member(member)
    key_path, pub_path = encryption_key_paths(member, out_dir)
    key = DecryptionKey.generate(member)
    _write_pair(key_path, pub_path, key.to_pem(), key.public.to_pem(), overwrite=overwrite)
    return key_path, pub_path, key


def _read_private(path: Path) -> bytes:
    """A private key file's bytes, refused if group or others may read it."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: private key is readable by group/others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    return data


def load_signing_key(path: Path, member: str) -> SigningKey:
    return SigningKey.from_pem(member, _read_private(path), source=str(path))


def load_decryption_key(path: Path, member: str) -> DecryptionKey:
    """A member's X25519 private key (`<MEMBER>.enc.key`), refused unless 0600-like."""
    return DecryptionKey.from_pem(member, _read_private(path), source=str(path))


def member_of_encryption_key_file(path: Path) -> str | None:
    """`NL-CUSTOMS` for `.../NL-CUSTOMS.enc.key`; None if the name does not say."""
    member = path.name.removesuffix(f"{ENCRYPTION_STEM}.key")
    return member if member != path.name and MEMBER_ID_RE.fullmatch(member) else None


def member_of_signing_key_file(path: Path) -> str | None:
    """`NL-CUSTOMS` for `.../NL-CUSTOMS.key` (the name `bus keygen` gives it); None if the name does
    not say (another naming scheme, or an encryption key `<MEMBER>.enc.key`)."""
    if path.name.endswith(f"{ENCRYPTION_STEM}.key"):
        return None
    member = path.name.removesuffix(".key")
    return member if member != path.name and MEMBER_ID_RE.fullmatch(member) else None


def check_key_owner_files(signer: SigningKey, key_file: Path, member: str, federation: Path | None = None,
                          authority_pub: Path | None = None) -> str | None:
    """Refuse (`KeyOwnerMismatch`) a signing key known to be another member's than `member`: by the
    directory in `federation`, if given (verified with `authority_pub`), else by `key_file`'s name.
    Return a warning for the sender if the directory suggests the router will reject what it signs
    (`bus.core.key_owner`); None if not."""
    from bus.adapters.federation_file import load_verified_directory
    from bus.core.key_owner import check_key_owner, key_note
    from bus.core.trust import utcnow

    directory = None
    if federation is not None:
        if authority_pub is None:
            raise KeyFileError(f"{federation}: a federation directory needs the authority's public key "
                               "that signed it (--authority-pub)")
        directory = load_verified_directory(federation, authority_pub)
    check_key_owner(signer.key_id, member, directory=directory, file_label=member_of_signing_key_file(key_file),
                    key_source=str(key_file))
    return key_note(signer.key_id, member, directory, utcnow()) if directory is not None else None


def load_keyring(directory: Path) -> Keyring:
    """Every `<MEMBER>.pub` in a folder; the file name says whose key it is.

    Encryption public keys (`<MEMBER>.enc.pub`) beside them are not signing keys and are skipped.
    """
    if not directory.is_dir():
        raise KeyFileError(f"keys directory {directory} does not exist")
    ring = Keyring()
    for pub in sorted(directory.glob("*.pub")):
        if pub.name.endswith(f"{ENCRYPTION_STEM}.pub"):
            continue
        member = pub.name.split(".")[0]
        try:
            ring.add(member, PublicKey.from_pem(pub.read_bytes(), source=str(pub)))
        except OSError as exc:
            raise KeyFileError(f"cannot read {pub}: {exc}") from exc
    if not ring.keys:
        raise KeyFileError(f"no *.pub files in {directory}")
    return ring
