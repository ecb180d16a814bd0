"""`bus keygen`: a member's key pairs, signing (Ed25519) and encryption (X25519)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.keystore import generate_encryption_keypair, generate_keypair
from bus.cli._common import handle_errors, out


class KeyKind(StrEnum):
    BOTH = "both"
    SIGNING = "signing"
    ENCRYPTION = "encryption"


def keygen(
    member: Annotated[str, typer.Option("--member", help="Member id, e.g. NL-CUSTOMS.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for <MEMBER>.key/.pub and <MEMBER>.enc.key/.enc.pub.")
    ],
    kind: Annotated[
        KeyKind, typer.Option("--kind", help="Which key pair(s): both, signing or encryption (e.g. to rotate one).")
    ] = KeyKind.BOTH,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing private key.")] = False,
) -> None:
    """Generate the member's key pairs; private keys are written 0600 and never leave this host.

    Send only the .pub files to the federation authority (`bus federation add-key`).
    """
    if kind in (KeyKind.BOTH, KeyKind.SIGNING):
        key_path, pub_path, signer = generate_keypair(member, out_dir, overwrite=force)
        out.print(f"signing key id     {signer.key_id}", highlight=False)
        out.print(f"  private          {key_path} (0600)", highlight=False)
        out.print(f"  public           {pub_path}", highlight=False)
    if kind in (KeyKind.BOTH, KeyKind.ENCRYPTION):
        key_path, pub_path, decryption = generate_encryption_keypair(member, out_dir, overwrite=force)
        out.print(f"encryption key id  {decryption.key_id}", highlight=False)
        out.print(f"  private          {key_path} (0600)", highlight=False)
        out.print(f"  public           {pub_path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("keygen")(handle_errors(keygen))
