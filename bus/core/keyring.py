"""Who may speak for whom: resolving a key id to a public key, then judging its use.

Verification asks the resolver two separate questions, with the signature
check in between (docs/wire-format.md, "Verification"):

1. `lookup(key_id, producer)`: which public key is this, and does the claimed
   producer own it? (`unknown-key`, `key-not-owned-by-producer`)
2. `authorize(key_id, producer, alert_type, created)`, only once the signature
   verified with that key: was the key valid when the alert was created, and
   may the producer publish this type? (`key-not-yet-valid`, `key-revoked`,
   `key-expired`, then `type-not-allowed`)

Splitting them means that every verdict of step 2 is about a record its
producer provably signed, so the producer may be told about it (a receipt),
while nothing unauthenticated ever gets an answer beyond steps 1 and earlier.

The router and feed readers only depend on `KeyResolver`; a plain `Keyring`
(built from a folder of `.pub` files) is enough for a quick look, the signed
federation directory (`bus.core.trust`) answers both questions from one
signed source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bus.core.keys import PublicKey
from bus.errors import RejectReason, UnknownKeyError, VerificationError


class KeyResolver(Protocol):
    def lookup(self, key_id: str, producer: str) -> PublicKey:
        """The key with this id if `producer` owns it; else raise VerificationError
        (`unknown-key` or `key-not-owned-by-producer`)."""
        ...

    def authorize(self, key_id: str, producer: str, alert_type: str, created: datetime) -> None:
        """Raise VerificationError unless the key may sign this alert type at `created`.

        Called only after the signature verified with the key `lookup` returned.
        Checks, first failure wins: key status at `created` (not yet valid,
        revoked, expired), then the producer's right to publish `alert_type`.
        """
        ...


def resolve(
    resolver: KeyResolver, key_id: str, producer: str, alert_type: str, created: datetime
) -> PublicKey:
    """Both questions at once, for callers that hold no record (status displays, tools)."""
    key = resolver.lookup(key_id, producer)
    resolver.authorize(key_id, producer, alert_type, created)
    return key


@dataclass
class Keyring:
    """key id -> (member id, public key); no validity periods or type rights."""

    keys: dict[str, tuple[str, PublicKey]] = field(default_factory=dict)

    def add(self, member: str, key: PublicKey) -> None:
        self.keys[key.key_id] = (member, key)

    def lookup(self, key_id: str, producer: str) -> PublicKey:
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

    def authorize(self, key_id: str, producer: str, alert_type: str, created: datetime) -> None:
        """A keyring knows no validity periods or type rights: every owned key may sign."""
        self.lookup(key_id, producer)

    def resolve(self, key_id: str, producer: str, alert_type: str, created: datetime) -> PublicKey:
        return resolve(self, key_id, producer, alert_type, created)
