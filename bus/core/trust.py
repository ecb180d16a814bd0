"""The signed federation directory: who the members are and which keys speak for them.

Without it anyone holding a key file could claim to be anyone. The directory is
the single source of truth, signed by the federation authority, and it is also
the full `KeyResolver`: key ownership, publishing rights, validity periods and
revocation are all decided here, from pure data (no file I/O, no clock unless
the caller omits one).

Versioning rule: every change made through `add_member`, `add_key` or
`revoke_key` returns a new directory with `version + 1` and a fresh
`issued_at`; signing never changes the content. Readers refuse a version lower
than one they already accepted (rollback).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from bus.core.keys import PublicKey, SigningKey
from bus.core.models import MEMBER_ID_RE, AlertType
from bus.errors import DirectoryError, KeyFileError, RejectReason, UnknownKeyError, VerificationError

DOMAIN = b"EPA-BUS-FEDERATION/1\x00"
"""Prefix of the signing input, so a directory signature can never pass for an alert's."""


AlertTypeName = AlertType
ALERT_TYPES: tuple[str, ...] = tuple(t.value for t in AlertType)


class MemberKind(StrEnum):
    CUSTOMS = "customs"
    POLICE = "police"
    JUDICIAL = "judicial"
    EU_AGENCY = "eu-agency"
    PORT_AUTHORITY = "port-authority"
    PRIVATE_OPERATOR = "private-operator"




# -- time helpers ----------------------------------------------------------------------


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def rfc3339(value: datetime) -> str:
    """One spelling per instant (UTC, 'Z', fraction only if non-zero): signatures need it."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the directory only holds aware UTC times")
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def utcnow() -> datetime:
    """Now, to the second: directory times are read by humans."""
    return datetime.now(UTC).replace(microsecond=0)


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"{what} must be a timezone-aware datetime, got {value!r}")


# -- models ------------------------------------------------------------------------------


class KeyStatus(StrEnum):
    VALID = "valid"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


class MemberKey(BaseModel):
    """One public key of a member with its validity window and optional revocation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    not_before: UtcDatetime
    not_after: UtcDatetime
    revoked_at: UtcDatetime | None = None
    revocation_reason: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MemberKey:
        try:
            actual = PublicKey.from_raw_b64(self.public_key).key_id
        except KeyFileError as exc:
            raise ValueError(str(exc)) from None
        if actual != self.key_id:
            raise ValueError(
                f"key_id {self.key_id} is not the thumbprint of public_key (that would be {actual})"
            )
        if self.not_after <= self.not_before:
            raise ValueError(f"key {self.key_id}: not_after must be later than not_before")
        if self.revocation_reason is not None and self.revoked_at is None:
            raise ValueError(f"key {self.key_id}: revocation_reason given without revoked_at")
        return self

    @classmethod
    def for_public_key(
        cls, key: PublicKey, not_before: datetime, not_after: datetime
    ) -> MemberKey:
        return cls(
            key_id=key.key_id,
            public_key=key.to_raw_b64(),
            not_before=not_before,
            not_after=not_after,
        )

    @property
    def public(self) -> PublicKey:
        return PublicKey.from_raw_b64(self.public_key)

    def status_at(self, at: datetime) -> KeyStatus:
        """Whether a signature made at `at` may be trusted (revocation beats expiry)."""
        _require_aware(at, "time")
        if at < self.not_before:
            return KeyStatus.NOT_YET_VALID
        if self.revoked_at is not None and at >= self.revoked_at:
            return KeyStatus.REVOKED
        if at >= self.not_after:
            return KeyStatus.EXPIRED
        return KeyStatus.VALID


def _check_country(value: str) -> str:
    if value == "EU" or pycountry.countries.get(alpha_2=value) is not None:
        return value
    raise ValueError(f"{value!r} is not an ISO 3166 alpha-2 country code (or 'EU')")


class Member(BaseModel):
    """A member organisation, what it may publish and the keys that speak for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=MEMBER_ID_RE.pattern)]
    name: Annotated[str, Field(min_length=1)]
    country: Annotated[str, AfterValidator(_check_country)]
    kind: MemberKind
    may_publish: tuple[AlertTypeName, ...] = ()
    keys: tuple[MemberKey, ...] = ()

    @field_validator("may_publish")
    @classmethod
    def _no_duplicate_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({t for t in value if value.count(t) > 1})
        if dupes:
            raise ValueError(f"alert type(s) listed twice: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _eu_only_for_agencies(self) -> Member:
        if self.country == "EU" and self.kind is not MemberKind.EU_AGENCY:
            raise ValueError(f"{self.id}: country 'EU' is only for kind eu-agency")
        return self

    def key(self, key_id: str) -> MemberKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


class _IndexCache:
    """Holder for the key index; always equal, so caching never changes model equality."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[tuple[Member, ...], dict[str, tuple[Member, MemberKey]]] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _IndexCache)

    __hash__ = None  # type: ignore[assignment]


class FederationDirectory(BaseModel):
    """The content the authority signs; also the federation's `KeyResolver`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    federation_id: Annotated[str, Field(pattern=MEMBER_ID_RE.pattern)]
    name: Annotated[str, Field(min_length=1)]
    version: Annotated[int, Field(ge=1)]
    issued_at: UtcDatetime
    members: tuple[Member, ...] = ()

    _cache: _IndexCache = PrivateAttr(default_factory=lambda: _IndexCache())

    @model_validator(mode="after")
    def _unique_ids(self) -> FederationDirectory:
        seen_members: set[str] = set()
        owners: dict[str, str] = {}
        for member in self.members:
            if member.id in seen_members:
                raise ValueError(f"member id {member.id} appears twice")
            seen_members.add(member.id)
            for key in member.keys:
                if key.key_id in owners:
                    raise ValueError(
                        f"key id {key.key_id} is listed for both "
                        f"{owners[key.key_id]} and {member.id}"
                    )
                owners[key.key_id] = member.id
        return self

    def _keys(self) -> dict[str, tuple[Member, MemberKey]]:
        """key id -> (member, key), rebuilt if `members` is not the tuple it was built from.

        `model_copy(update=...)` copies private attributes without re-validation, so a
        cache tied to object identity is the only safe one.
        """
        entry = self._cache.entry  # one read: safe if another thread replaces it meanwhile
        if entry is None or entry[0] is not self.members:
            entry = (self.members, {k.key_id: (m, k) for m in self.members for k in m.keys})
            self._cache.entry = entry
        return entry[1]

    # lookups -------------------------------------------------------------------------
    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)

    def find_key(self, key_id: str) -> tuple[Member, MemberKey] | None:
        return self._keys().get(key_id)

    # KeyResolver ---------------------------------------------------------------------
    def resolve(self, key_id: str, producer: str, alert_type: str, created: datetime) -> PublicKey:
        """The key that must have signed an alert of `producer` created at `created`.

        Checks, first failure wins: known key, owned by the producer, type allowed,
        valid at `created` (not-yet-valid, revoked, expired).
        """
        _require_aware(created, "created")
        found = self._keys().get(key_id)
        if found is None:
            raise UnknownKeyError(
                f"key id {key_id!r} belongs to no member of federation directory "
                f"{self.federation_id} v{self.version}"
            )
        member, key = found
        if member.id != producer:
            raise VerificationError(
                f"key {key_id} belongs to {member.id}, not to producer {producer}",
                RejectReason.KEY_NOT_OWNED,
            )
        if str(alert_type) not in member.may_publish:
            allowed = ", ".join(member.may_publish) or "nothing"
            raise VerificationError(
                f"{member.id} may not publish {alert_type} (allowed: {allowed})",
                RejectReason.TYPE_NOT_ALLOWED,
            )
        status = key.status_at(created)
        when = rfc3339(created)
        if status is KeyStatus.NOT_YET_VALID:
            raise VerificationError(
                f"key {key_id} of {member.id} is valid from {rfc3339(key.not_before)}; "
                f"alert created {when}",
                RejectReason.KEY_NOT_YET_VALID,
            )
        if status is KeyStatus.REVOKED:
            assert key.revoked_at is not None
            why = f" ({key.revocation_reason})" if key.revocation_reason else ""
            raise VerificationError(
                f"key {key_id} of {member.id} was revoked at {rfc3339(key.revoked_at)}{why}; "
                f"alert created {when}",
                RejectReason.KEY_REVOKED,
            )
        if status is KeyStatus.EXPIRED:
            raise VerificationError(
                f"key {key_id} of {member.id} expired at {rfc3339(key.not_after)}; "
                f"alert created {when}",
                RejectReason.KEY_EXPIRED,
            )
        return key.public

    # serialisation -------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready data (RFC 3339 strings, lists); `None` fields kept."""
        document: dict[str, Any] = _plain(self.model_dump(mode="python"))
        return document

    def canonical_bytes(self) -> bytes:
        """Deterministic JSON: sorted keys, no whitespace, UTF-8, RFC 3339 'Z' times."""
        return json.dumps(
            self.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def signing_input(self) -> bytes:
        return DOMAIN + self.canonical_bytes()

    def digest(self) -> str:
        """sha256 of the signing input: identifies one exact content of one version."""
        return hashlib.sha256(self.signing_input()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Enum):
        return value.value
    return value


class DirectorySignature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    authority_key_id: str
    signature: str = Field(description="base64 Ed25519 signature over DOMAIN + canonical JSON")


class SignedDirectory(BaseModel):
    """A directory as stored: its content plus the authority's signature (None = unsigned)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: FederationDirectory
    signature: DirectorySignature | None = None


# -- signing -------------------------------------------------------------------------------


def sign_directory(directory: FederationDirectory, authority: SigningKey) -> SignedDirectory:
    """Sign the content as it is; the version is the caller's business (see module doc)."""
    sig = authority.sign(directory.signing_input())
    return SignedDirectory(
        directory=directory,
        signature=DirectorySignature(
            authority_key_id=authority.key_id, signature=base64.b64encode(sig).decode()
        ),
    )


def verify_directory(
    signed: SignedDirectory,
    authority_keys: Sequence[PublicKey] | PublicKey,
    *,
    min_version: int | None = None,
) -> FederationDirectory:
    """Return the directory only if a trusted authority key signed exactly this content.

    Several authority keys may be trusted at once so the authority itself can rotate.
    `min_version` is the highest version already accepted: anything lower is a rollback.
    """
    keys = [authority_keys] if isinstance(authority_keys, PublicKey) else list(authority_keys)
    directory = signed.directory
    label = f"federation directory {directory.federation_id} version {directory.version}"
    block = signed.signature
    if block is None:
        raise DirectoryError(
            f"{label} is unsigned (no signature block); the authority must sign it", "unsigned"
        )
    trusted = {k.key_id: k for k in keys}
    authority = trusted.get(block.authority_key_id)
    if authority is None:
        raise DirectoryError(
            f"{label} is signed by authority key {block.authority_key_id}, which is not a trusted "
            f"federation authority key (trusted: {', '.join(sorted(trusted)) or 'none'})",
            "unknown-authority",
        )
    try:
        raw = base64.b64decode(block.signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not authority.verify(raw, directory.signing_input()):
        raise DirectoryError(
            f"{label}: signature does not match the content; the directory was modified after "
            "signing (tampered) and must not be used",
            "bad-signature",
        )
    if min_version is not None and directory.version < min_version:
        raise DirectoryError(
            f"{label} is older than version {min_version} already accepted; refusing a rollback",
            "rollback",
        )
    return directory


# -- immutable updates (each returns version + 1) ----------------------------------------


def new_directory(
    federation_id: str, name: str, *, issued_at: datetime | None = None
) -> FederationDirectory:
    """An empty directory, version 1."""
    return FederationDirectory(
        federation_id=federation_id, name=name, version=1, issued_at=issued_at or utcnow()
    )


def _next(
    directory: FederationDirectory, members: Iterable[Member], issued_at: datetime | None
) -> FederationDirectory:
    try:
        return FederationDirectory(
            federation_id=directory.federation_id,
            name=directory.name,
            version=directory.version + 1,
            issued_at=issued_at or utcnow(),
            members=tuple(members),
        )
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise DirectoryError(f"the change would make the directory invalid: {exc}") from exc


def _require_member(directory: FederationDirectory, member_id: str) -> Member:
    member = directory.member(member_id)
    if member is None:
        known = ", ".join(m.id for m in directory.members) or "none"
        raise DirectoryError(f"no member {member_id} in the directory (members: {known})")
    return member


def _replace_member(directory: FederationDirectory, updated: Member) -> list[Member]:
    return [updated if m.id == updated.id else m for m in directory.members]


def add_member(
    directory: FederationDirectory, member: Member, *, issued_at: datetime | None = None
) -> FederationDirectory:
    if directory.member(member.id) is not None:
        raise DirectoryError(f"member {member.id} is already in the directory")
    return _next(directory, [*directory.members, member], issued_at)


def add_key(
    directory: FederationDirectory,
    member_id: str,
    key: MemberKey,
    *,
    issued_at: datetime | None = None,
) -> FederationDirectory:
    """Rotation step one: the new key joins; the old one keeps its own not_after."""
    member = _require_member(directory, member_id)
    found = directory.find_key(key.key_id)
    if found is not None:
        raise DirectoryError(f"key {key.key_id} is already listed for {found[0].id}")
    updated = member.model_copy(update={"keys": (*member.keys, key)})
    return _next(directory, _replace_member(directory, updated), issued_at)


def revoke_key(
    directory: FederationDirectory,
    member_id: str,
    key_id: str,
    *,
    at: datetime,
    reason: str | None,
    issued_at: datetime | None = None,
) -> FederationDirectory:
    """Alerts created at or after `at` fail with key-revoked; earlier ones still verify.

    A revocation may be moved earlier (the compromise started sooner than thought)
    but never later, which would quietly re-trust signatures.
    """
    _require_aware(at, "revocation time")
    member = _require_member(directory, member_id)
    key = member.key(key_id)
    if key is None:
        known = ", ".join(k.key_id for k in member.keys) or "none"
        raise DirectoryError(f"{member_id} has no key {key_id} (keys: {known})")
    at = at.astimezone(UTC)
    if key.revoked_at is not None and at >= key.revoked_at:
        raise DirectoryError(
            f"key {key_id} is already revoked at {rfc3339(key.revoked_at)}; "
            "a revocation can only be moved earlier"
        )
    new_key = key.model_copy(update={"revoked_at": at, "revocation_reason": reason})
    new_key = MemberKey.model_validate(new_key.model_dump())
    updated = member.model_copy(
        update={"keys": tuple(new_key if k.key_id == key_id else k for k in member.keys)}
    )
    return _next(directory, _replace_member(directory, updated), issued_at)


def bump(
    directory: FederationDirectory, *, issued_at: datetime | None = None
) -> FederationDirectory:
    """Same members, next version: for re-signing content that was edited by hand."""
    return _next(directory, directory.members, issued_at)


# -- freshness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshnessPolicy:
    """How far from `now` an alert's created time may be, and whether it has expired."""

    max_future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.max_future_skew < timedelta(0) or self.max_age <= timedelta(0):
            raise ValueError("max_future_skew must be >= 0 and max_age > 0")

    def check(self, created: datetime, expires: datetime | None, now: datetime) -> None:
        """Raise VerificationError FUTURE, EXPIRED or STALE (in that order)."""
        _require_aware(created, "created")
        _require_aware(now, "now")
        if created > now + self.max_future_skew:
            raise VerificationError(
                f"created {rfc3339(created)} is more than {self.max_future_skew} ahead of "
                f"now ({rfc3339(now)})",
                RejectReason.FUTURE,
            )
        if expires is not None:
            _require_aware(expires, "expires")
            if expires <= now:
                raise VerificationError(
                    f"expired at {rfc3339(expires)} (now {rfc3339(now)})", RejectReason.EXPIRED
                )
        if created < now - self.max_age:
            raise VerificationError(
                f"created {rfc3339(created)} is older than the maximum age {self.max_age} "
                f"(now {rfc3339(now)})",
                RejectReason.STALE,
            )


__all__ = [
    "ALERT_TYPES",
    "DOMAIN",
    "DirectoryError",
    "DirectorySignature",
    "FederationDirectory",
    "FreshnessPolicy",
    "KeyStatus",
    "Member",
    "MemberKey",
    "MemberKind",
    "SignedDirectory",
    "add_key",
    "add_member",
    "bump",
    "new_directory",
    "revoke_key",
    "rfc3339",
    "sign_directory",
    "utcnow",
    "verify_directory",
]
