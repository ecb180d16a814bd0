"""`bus publish`'s look before it sends: is `--key` really `--member`'s key? (`bus.core.key_owner`)"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from bus.adapters.keystore import member_of_signing_key_file
from bus.cli._common import err
from bus.core.key_owner import check_key_owner, key_note
from bus.core.keys import SigningKey
from bus.core.trust import utcnow
from bus.errors import BusError


def check_signing_key(signer: SigningKey, key_file: Path, member: str,
                      federation: Path | None, authority_pub: Path | None) -> None:
    """Raise `KeyOwnerMismatch` (exit 10) if the key is known to be another member's; print a
    warning if the directory given suggests the router will reject what it signs."""
    directory = None
    if federation is not None:
        if authority_pub is None:
            raise BusError("--federation needs --authority-pub (the federation authority's public key)")
        from bus.adapters.federation_file import load_verified_directory

        directory = load_verified_directory(federation, authority_pub)
    check_key_owner(signer.key_id, member, directory=directory,
                    file_label=member_of_signing_key_file(key_file), key_source=str(key_file))
    if directory is not None and (note := key_note(signer.key_id, member, directory, utcnow())):
        err.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


__all__ = ["check_signing_key"]
