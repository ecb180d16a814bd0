"""`bus publish`: validate, sign (and, for confidential alerts, encrypt) and publish alerts from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bus.adapters.alert_files import load_alerts
from bus.adapters.keystore import load_signing_key
from bus.cli._common import AuthorityPubOpt, KafkaSettings, err, handle_errors, kafka_options, out
from bus.cli._key_owner import check_signing_key
from bus.cli._untrusted import shown
from bus.core.confidential import EncryptionPolicy, EncryptMode
from bus.core.models import AlertType
from bus.errors import BusError, EncryptionError, RejectedAlerts, WaitTimedOut

if TYPE_CHECKING:
    from bus.composition import Bus


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
    authority_pub: AuthorityPubOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the router's receipt of every alert; exit non-zero if any was "
                                          "rejected (exit 8) or none came in time (exit 9), naming the reasons.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds --wait waits for receipts.")] = 60.0,
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
    bus = Bus(settings)
    waiter = ReceiptWaiter(bus, member, federation, authority_pub) if wait else None
    try:
        with bus.publisher(signer, encryption=policy, create_topics=True) as publisher:
            receipts = publisher.publish_many(alerts)
    except BaseException:
        if waiter is not None:
            waiter.close()
        raise
    for r in receipts:
        if as_json:
            print(json.dumps({**r.as_dict(), "encrypted": r.message_id in encrypted}), flush=True)
        else:
            lock = "  encrypted" if r.message_id in encrypted else ""
            out.print(f"{r.message_id}  {r.topic}  partition={r.partition}  offset={r.offset}{lock}",
                      highlight=False)
    err.print(f"published {len(receipts)} alert(s) as {member} (key {signer.key_id}) to {settings.bootstrap}"
              + (f", {len(encrypted)} encrypted to their release_to" if encrypted else ""))
    if waiter is not None:
        waiter.wait([r.message_id for r in receipts], timeout, as_json)


class ReceiptWaiter:
    """`--wait`: remembers where the member's receipts end before publishing, then waits for ours."""

    def __init__(self, bus: Bus, member: str, federation: Path | None, authority_pub: Path | None) -> None:
        from bus.cli.receipts import directory_of

        self.reader = bus.receipt_reader(member, directory_of(federation, authority_pub))
        try:
            self.start = self.reader.end()
        except BaseException:
            self.reader.close()
            raise

    def wait(self, message_ids: list[str], timeout: float, as_json: bool) -> None:
        try:
            found = self.reader.wait_for(message_ids, from_offset=self.start, timeout=timeout)
        finally:
            self.close()
        rejected: dict[str, str] = {}
        missing = [m for m in message_ids if m not in found]
        for mid in message_ids:
            record = found.get(mid)
            value = record.receipt.value if record is not None and record.receipt is not None else None
            if value is None:
                line = {"message_id": mid, "outcome": "no receipt", "timeout_s": timeout}
                text = f"{mid}  no receipt within {timeout:g} s"
            elif value.get("outcome") == "routed":
                line = {"message_id": mid, "outcome": "routed", "recipients": value.get("recipients"),
                        "recipient_count": value.get("recipient_count")}
                names = ", ".join(value.get("recipients") or []) or "-"
                text = f"{mid}  routed to {value.get('recipient_count')}: {names}"
            else:
                rejected[mid] = str(value.get("reason"))
                line = {"message_id": mid, "outcome": "rejected", "reason": value.get("reason"),
                        "detail": value.get("detail")}
                text = f"{mid}  rejected: {value.get('reason')}: {value.get('detail')}"
            if as_json:
                print(json.dumps(line), flush=True)
            else:
                out.print(shown(text), highlight=False)  # the detail quotes what the router saw
        if rejected:
            reasons = ", ".join(f"{m}: {r}" for m, r in rejected.items())
            raise RejectedAlerts(f"{len(rejected)} of {len(message_ids)} alert(s) rejected by the router ({reasons})",
                                 rejected)
        if missing:
            raise WaitTimedOut(f"no receipt within {timeout:g} s for {len(missing)} of {len(message_ids)} alert(s) "
                               f"({', '.join(missing)}): is a router running?")

    def close(self) -> None:
        self.reader.close()


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
