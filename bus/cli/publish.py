"""`bus publish`: validate, sign and publish alerts from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bus.adapters.alert_files import load_alerts
from bus.adapters.keystore import load_signing_key
from bus.cli._common import KafkaSettings, err, handle_errors, kafka_options, out
from bus.core.models import AlertType


@kafka_options
@handle_errors
def publish(
    file: Annotated[Path, typer.Option("--file", "-f", help="alert.json (object or array) or alerts.jsonl.")],
    member: Annotated[str, typer.Option("--member", envvar="BUS_MEMBER", help="Your member id.")],
    key: Annotated[Path, typer.Option("--key", envvar="BUS_KEY", help="Your Ed25519 private key (PEM).")],
    alert_type: Annotated[
        AlertType | None, typer.Option("--type", "-t", help="Alert type (if the file does not say).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
    *,
    settings: KafkaSettings,
) -> None:
    """Validate every alert first; publish only if all are valid. One line per alert."""
    from bus.logs import quiet
    from bus.services.publisher import Publisher

    quiet()
    signer = load_signing_key(key, member)
    alerts = load_alerts(file, alert_type=alert_type.value if alert_type else None, producer=member)
    with Publisher(settings, signer) as publisher:
        receipts = publisher.publish_many(alerts)
    for r in receipts:
        if as_json:
            print(json.dumps(r.as_dict()), flush=True)
        else:
            out.print(f"{r.message_id}  {r.topic}  partition={r.partition}  offset={r.offset}", highlight=False)
    err.print(f"published {len(receipts)} alert(s) as {member} (key {signer.key_id}) to {settings.bootstrap}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
