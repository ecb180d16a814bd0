"""Typed errors shared by the whole bus.

Every rejection carries a stable reason code so that the dead-letter topic, the
audit trail, logs and the CLI all speak the same vocabulary (documented in
docs/wire-format.md).
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    UNKNOWN_KEY = "unknown-key"
    KEY_NOT_OWNED = "key-not-owned-by-producer"
    TYPE_NOT_ALLOWED = "type-not-allowed"
    KEY_NOT_YET_VALID = "key-not-yet-valid"
    KEY_EXPIRED = "key-expired"
    KEY_REVOKED = "key-revoked"
    STALE = "stale"
    FUTURE = "future"
    EXPIRED = "expired"
    REPLAY = "replay"
    BAD_SIGNATURE = "bad-signature"
    BAD_SCHEMA = "bad-schema"


class BusError(Exception):
    """Base class: a message a human can act on."""


class AlertValidationError(BusError):
    """An alert failed validation; `errors` lists (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "; ".join(f"{loc}: {msg}" for loc, msg in errors)
        super().__init__(f"invalid alert: {lines}")


class VerificationError(BusError):
    """A received record must not be trusted; `reason` says why."""

    reason: RejectReason = RejectReason.BAD_SIGNATURE

    def __init__(self, detail: str, reason: RejectReason | None = None):
        if reason is not None:
            self.reason = reason
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


class SignatureError(VerificationError):
    reason = RejectReason.BAD_SIGNATURE


class SchemaError(VerificationError):
    reason = RejectReason.BAD_SCHEMA


class UnknownKeyError(VerificationError):
    reason = RejectReason.UNKNOWN_KEY


class KeyFileError(BusError):
    """A key file is missing, unreadable or not an Ed25519 key."""
