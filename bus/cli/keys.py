"""`bus keygen`: an Ed25519 key pair for a member."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.keystore import generate_keypair
from bus.cli._common import handle_errors, out


def keygen(
    member: Annotated[str, typer.Option("--member", help="Member id, e.g. NL-CUSTOMS.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for <MEMBER>.key and <MEMBER>.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing private key.")] = False,
) -> None:
    """Generate an Ed25519 key pair; the private key is written 0600."""
    key_path, pub_path, signer = generate_keypair(member, out_dir, overwrite=force)
    out.print(f"key id   {signer.key_id}")
    out.print(f"private  {key_path} (0600)")
    out.print(f"public   {pub_path}")


def register(app: typer.Typer) -> None:
    app.command("keygen")(handle_errors(keygen))
