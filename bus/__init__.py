"""EPA bus: signed, schema-validated alerts on Apache Kafka for the European Ports Alliance.

The public API, for agency developers (README, "SDK quick start"):

    import bus

    settings = bus.KafkaSettings(bootstrap="127.0.0.1:9092")
    key = bus.load_signing_key("keys/NL-CUSTOMS.key", "NL-CUSTOMS")
    receipts = bus.publish(settings, key, alert)        # a dict or a bus.BaseAlert

    trust = bus.load_federation("federation.yaml", "authority.pub")
    for record in bus.read_feed(settings, "feed.nl-customs", trust):
        ...                                             # record.verified or record.error

Names are imported on first use (module `__getattr__`), so `import bus.core.models`
does not pull in Kafka clients or services, and no import cycle can start here.
Everything else (`bus.core`, `bus.adapters`, `bus.services`) is internal and may change.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.api import load_federation, load_keyring, load_signing_key, parse_alert, publish, read_feed, verify
    from bus.config import KafkaSettings
    from bus.core.keys import SigningKey
    from bus.core.models import AlertType, BaseAlert
    from bus.core.sealing import VerifiedAlert
    from bus.errors import (
        AlertValidationError,
        BusError,
        KafkaError,
        PublishError,
        RejectReason,
        VerificationError,
    )
    from bus.services.publisher import Receipt
    from bus.services.reader import FeedRecord

#: public name -> module that defines it
_EXPORTS = {
    "publish": "bus.api",
    "read_feed": "bus.api",
    "verify": "bus.api",
    "parse_alert": "bus.api",
    "load_signing_key": "bus.api",
    "load_federation": "bus.api",
    "load_keyring": "bus.api",
    "KafkaSettings": "bus.config",
    "SigningKey": "bus.core.keys",
    "AlertType": "bus.core.models",
    "BaseAlert": "bus.core.models",
    "VerifiedAlert": "bus.core.sealing",
    "Receipt": "bus.services.publisher",
    "FeedRecord": "bus.services.reader",
    "BusError": "bus.errors",
    "AlertValidationError": "bus.errors",
    "VerificationError": "bus.errors",
    "RejectReason": "bus.errors",
    "KafkaError": "bus.errors",
    "PublishError": "bus.errors",
}

__all__ = [
    "AlertType",
    "AlertValidationError",
    "BaseAlert",
    "BusError",
    "FeedRecord",
    "KafkaError",
    "KafkaSettings",
    "PublishError",
    "Receipt",
    "RejectReason",
    "SigningKey",
    "VerificationError",
    "VerifiedAlert",
    "load_federation",
    "load_keyring",
    "load_signing_key",
    "parse_alert",
    "publish",
    "read_feed",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bus' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
