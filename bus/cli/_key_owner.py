"""`bus publish`'s look before it sends: is `--key` really `--member`'s key? (`bus.core.key_owner`)"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from bus.adapters.keystore import check_key_owner_files
from bus.cli._common import err
from bus.core.keys import SigningKey


def check_signing_key(signer: SigningKey, key_file: Path, member: str,
                      federation: Path | None, authority_pub: Path | None) -> None:
    """Raise `KeyOwnerMismatch` (exit 10) if the key is known to be another member's; print a
    warning if the directory given suggests the router will reject what it signs."""
    if (note := check_key_owner_files(signer, key_file, member, federation, authority_pub)) is not None:
        err.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


__all__ = ["check_signing_key"]
