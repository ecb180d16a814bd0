"""Key files on disk: `<MEMBER>.key` (PKCS#8 PEM, 0600) and `<MEMBER>.pub` (PEM)."""

from __future__ import annotations

import stat
from pathlib import Path

from bus.adapters.private_file import write_private
from bus.core.keyring import Keyring
from bus.core.keys import PublicKey, SigningKey
from bus.core.models import MEMBER_ID_RE
from bus.errors import KeyFileError


def generate_keypair(member: str, out_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path, SigningKey]:
    if not MEMBER_ID_RE.fullmatch(member):
        raise KeyFileError(
            f"member id {member!r} must be upper-case letters/digits separated by '-', e.g. NL-CUSTOMS"
        )
    return write_new_keypair(out_dir / f"{member}.key", out_dir / f"{member}.pub", member, overwrite=overwrite)


def write_new_keypair(key_path: Path, pub_path: Path, owner: str, *, overwrite: bool = False
                      ) -> tuple[Path, Path, SigningKey]:
    """A fresh Ed25519 key: private PEM 0600 from creation, public PEM beside it."""
    if key_path.exists() and not overwrite:
        raise KeyFileError(f"{key_path} already exists; refusing to overwrite a private key")
    signer = SigningKey.generate(owner)
    write_private(key_path, signer.to_pem())
    pub_path.write_bytes(signer.public.to_pem())
    return key_path, pub_path, signer


def load_signing_key(path: Path, member: str) -> SigningKey:
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
    return SigningKey.from_pem(member, data, source=str(path))


def load_keyring(directory: Path) -> Keyring:
    """Every `<MEMBER>.pub` in a folder; the file name says whose key it is."""
    if not directory.is_dir():
        raise KeyFileError(f"keys directory {directory} does not exist")
    ring = Keyring()
    for pub in sorted(directory.glob("*.pub")):
        member = pub.name.split(".")[0]
        try:
            ring.add(member, PublicKey.from_pem(pub.read_bytes(), source=str(pub)))
        except OSError as exc:
            raise KeyFileError(f"cannot read {pub}: {exc}") from exc
    if not ring.keys:
        raise KeyFileError(f"no *.pub files in {directory}")
    return ring
