"""Who may speak for whom: resolving a key id to a public key.

The router and feed readers only depend on `KeyResolver`; a plain `Keyring`
(built from a folder of `.pub` files) is enough for a quick look, the signed
federation directory (`bus.core.trust`) adds validity, revocation and type
rights on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bus.core.keys import PublicKey
from bus.errors import RejectReason, UnknownKeyError, VerificationError


class KeyResolver(Protocol):
    def resolve(
        self, key_id: str, producer: str, alert_type: str, created: datetime
    ) -> PublicKey:
        """Return the key that must have signed, or raise VerificationError."""
        ...


@dataclass
class Keyring:
    """key id -> (member id, public key); no validity periods or type rights."""

    keys: dict[str, tuple[str, PublicKey]] = field(default_factory=dict)

    def add(self, member: str, key: PublicKey) -> None:
        self.keys[key.key_id] = (member, key)

    def resolve(
        self, key_id: str, producer: str, alert_type: str, created: datetime
    ) -> PublicKey:
        try:
            owner, key = self.keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"key id {key_id!r} is not in the keyring") from None
        if owner != producer:
            raise VerificationError(
                f"key {key_id} belongs to {owner}, not to producer {producer}",
                RejectReason.KEY_NOT_OWNED,
            )
        return key
