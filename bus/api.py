"""The functions behind `import bus`: publish, read and verify alerts in a few lines.

An agency developer should not have to know the layers (core, adapters,
services) to send one alert, so these compose them with the bus's own defaults:
the shipped Avro schemas and EMPACT code list (`bus.adapters.schema_files`),
keys and directories read from files. Their signatures are the stable surface;
what they call underneath may change.

    import bus

    settings = bus.KafkaSettings(bootstrap="127.0.0.1:9092")
    key = bus.load_signing_key("keys/NL-CUSTOMS.key", "NL-CUSTOMS")
    bus.publish(settings, key, {"header": {...}, "container_number": "CSQU3054383"})

    trust = bus.load_federation("federation.yaml", "authority.pub")
    for record in bus.read_feed(settings, "feed.nl-customs", trust):
        print(record.verified.alert if record.ok else record.error)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings
from bus.core.codelists import EmpactCodeList
from bus.core.keyring import KeyResolver, Keyring
from bus.core.keys import SigningKey
from bus.core.models import AlertType, BaseAlert
from bus.core.models import parse_alert as _parse_alert
from bus.core.sealing import VerifiedAlert, unseal
from bus.core.signing import Headers
from bus.errors import AlertValidationError

if TYPE_CHECKING:  # the Kafka-facing services are imported when first used
    from bus.core.trust import FederationDirectory
    from bus.services.publisher import Receipt
    from bus.services.reader import FeedRecord

__all__ = [
    "load_federation",
    "load_keyring",
    "load_signing_key",
    "parse_alert",
    "publish",
    "read_feed",
    "verify",
]

AlertInput = BaseAlert | Mapping[str, Any]


def load_signing_key(path: str | Path, member: str) -> SigningKey:
    """Your member's Ed25519 private key (PEM, mode 0600), to sign what you publish."""
    from bus.adapters.keystore import load_signing_key as load

    return load(Path(path), member)


def load_federation(directory: str | Path, authority_pub: str | Path) -> FederationDirectory:
    """The signed federation directory, verified against the authority's public key.

    It says which keys each member may sign with, and when: pass it as `trust` to
    `read_feed` and `verify`.
    """
    from bus.adapters.federation_file import load_verified_directory

    return load_verified_directory(Path(directory), Path(authority_pub))


def load_keyring(folder: str | Path) -> Keyring:
    """Trust every `<MEMBER>.pub` in a folder: simpler than a directory, for tests and pilots."""
    from bus.adapters.keystore import load_keyring as load

    return load(Path(folder))


def parse_alert(
    data: Mapping[str, Any],
    *,
    alert_type: AlertType | str | None = None,
    producer: str | None = None,
    empact_codes: EmpactCodeList | None = None,
) -> BaseAlert:
    """Validate `{"header": {...}, ...body}` into an alert, or raise `AlertValidationError`
    naming every field that is wrong. EMPACT priorities are checked against the bus's
    code list unless you pass another."""
    return _parse_alert(
        data, empact_codes=empact_codes or default_empact_codes(), alert_type=alert_type, producer=producer
    )


def publish(
    settings: KafkaSettings,
    signing_key: SigningKey,
    alerts: AlertInput | Iterable[AlertInput],
    *,
    timeout: float = 60.0,
) -> list[Receipt]:
    """Validate, sign and publish alerts as `signing_key.member`; one receipt per alert.

    `alerts` is one alert or several, each a validated `BaseAlert` or its JSON shape
    (missing producer, message id and creation time are filled in). Every alert is
    checked before anything is sent: one bad alert raises `AlertValidationError`
    (paths prefixed `[index]`) and nothing is published. Kafka failing raises a
    `bus.errors.KafkaError` that says why (unreachable, not authorised, ...), or
    `bus.errors.PublishError` when it did not acknowledge in time. The engine is the
    one `settings.engine` names (confluent unless told otherwise).
    """
    from bus.composition import Bus

    items = [alerts] if isinstance(alerts, BaseAlert | Mapping) else list(alerts)
    codes = default_empact_codes()
    valid: list[BaseAlert] = []
    errors: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        if isinstance(item, BaseAlert):
            valid.append(item)
            continue
        try:
            valid.append(_parse_alert(item, empact_codes=codes, producer=signing_key.member))
        except AlertValidationError as exc:
            prefix = f"[{index}]" if len(items) > 1 else ""
            errors += [(f"{prefix}.{loc}" if prefix else loc, message) for loc, message in exc.errors]
    if errors:
        raise AlertValidationError(errors)
    with Bus(settings).publisher(signing_key, create_topics=True) as publisher:
        return publisher.publish_many(valid, timeout=timeout)


def read_feed(
    settings: KafkaSettings,
    topic: str | Sequence[str],
    trust: KeyResolver,
    *,
    from_beginning: bool = True,
    follow: bool = False,
    since: datetime | None = None,
) -> Iterator[FeedRecord]:
    """Every record of a topic (your `feed.<member>`, say), each verified end to end.

    A record is `ok` with `verified` (the alert, the originator, the key that
    signed it) or carries the `error` saying why it must not be trusted: nothing
    is skipped silently. Without `follow` the iterator ends when it has caught up;
    with it, it waits for new records until you stop iterating.
    """
    from bus.composition import Bus

    with Bus(settings).feed_reader(topic, trust, from_beginning=from_beginning, follow=follow,
                                   since=since) as reader:
        yield from reader.records()


def verify(key: bytes | None, value: bytes, headers: Headers, trust: KeyResolver) -> VerifiedAlert:
    """Verify one record you received some other way (key, value and headers as on Kafka).

    Returns the alert with its verified originator, or raises a
    `bus.errors.VerificationError` whose `reason` is the wire format's reject code.
    """
    return unseal(key, value, headers, trust, default_schemas(), default_empact_codes())
