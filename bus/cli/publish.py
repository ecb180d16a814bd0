"""`bus publish`: validate, sign (and, for confidential alerts, encrypt) and publish alerts from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.alert_files import load_alerts
from bus.adapters.keystore import load_signing_key
from bus.cli._common import KafkaSettings, err, handle_errors, kafka_options, out
from bus.cli._key_owner import check_signing_key
from bus.core.confidential import EncryptionPolicy, EncryptMode
from bus.core.models import AlertType
from bus.errors import BusError, EncryptionError


def encryption_policy(encrypt: bool | None, federation: Path | None, authority_pub: Path | None) -> EncryptionPolicy:
    """`--encrypt` -> always, `--no-encrypt` -> never, neither -> TLP:RED and H2/H3 only.

    Recipients' encryption keys come from the signed federation directory; it is only
    required once an alert is to be encrypted (sealing then says so, naming the alert).
    """
    mode = EncryptMode.AUTO if encrypt is None else EncryptMode.ALWAYS if encrypt else EncryptMode.NEVER
    if mode is EncryptMode.NEVER or federation is None:
        if mode is EncryptMode.ALWAYS:
            raise BusError("--encrypt needs --federation FILE --authority-pub PUB (recipients' encryption keys)")
        return EncryptionPolicy(mode)
    if authority_pub is None:
        raise BusError("--federation needs --authority-pub (the federation authority's public key)")
    from bus.adapters.federation_file import load_verified_directory

    return EncryptionPolicy(mode, load_verified_directory(federation, authority_pub))


@kafka_options
@handle_errors
def publish(
    file: Annotated[Path, typer.Option("--file", "-f", help="alert.json (object or array) or alerts.jsonl.")],
    member: Annotated[str, typer.Option("--member", envvar="BUS_MEMBER", help="Your member id.")],
    key: Annotated[Path, typer.Option("--key", envvar="BUS_KEY", help="Your Ed25519 private key (PEM).")],
    alert_type: Annotated[
        AlertType | None, typer.Option("--type", "-t", help="Alert type (if the file does not say).")
    ] = None,
    encrypt: Annotated[
        bool | None,
        typer.Option("--encrypt/--no-encrypt", show_default="TLP:RED and H2/H3 alerts only",
                     help="Encrypt every alert to its release_to, or none (--no-encrypt: even TLP:RED "
                          "and H2/H3 go in clear, readable by the bus operator)."),
    ] = None,
    federation: Annotated[
        Path | None,
        typer.Option("--federation", envvar="BUS_FEDERATION",
                     help="Signed federation directory: the recipients' encryption keys."),
    ] = None,
    authority_pub: Annotated[
        Path | None, typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB", help="Federation authority key.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Validate (and seal) every alert first; publish only if all are fine. One line per alert."""
    from bus.composition import Bus
    from bus.logs import quiet

    quiet()
    signer = load_signing_key(key, member)
    check_signing_key(signer, key, member, federation, authority_pub)  # another member's key: refused
    policy = encryption_policy(encrypt, federation, authority_pub)
    alerts = load_alerts(file, alert_type=alert_type.value if alert_type else None, producer=member)
    encrypted: set[str] = set()
    for n, alert in enumerate(alerts, 1):
        try:
            if policy.check(alert):
                encrypted.add(str(alert.header.message_id))
        except EncryptionError as exc:
            raise BusError(f"{file}, alert {n} ({alert.header.message_id}): {exc}") from None
    with Bus(settings).publisher(signer, encryption=policy, create_topics=True) as publisher:
        receipts = publisher.publish_many(alerts)
    for r in receipts:
        if as_json:
            print(json.dumps({**r.as_dict(), "encrypted": r.message_id in encrypted}), flush=True)
        else:
            lock = "  encrypted" if r.message_id in encrypted else ""
            out.print(f"{r.message_id}  {r.topic}  partition={r.partition}  offset={r.offset}{lock}",
                      highlight=False)
    err.print(f"published {len(receipts)} alert(s) as {member} (key {signer.key_id}) to {settings.bootstrap}"
              + (f", {len(encrypted)} encrypted to their release_to" if encrypted else ""))


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
