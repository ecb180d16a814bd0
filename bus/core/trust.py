"""The signed federation directory: who the members are and which keys speak for them.

Without it anyone holding a key file could claim to be anyone. The directory is
the single source of truth, signed by the federation authority, and it is also
the full `KeyResolver`: key ownership (`lookup`, before the signature is checked),
then validity periods, revocation and publishing rights (`authorize`, after it)
are all decided here, from pure data (no file I/O, no clock unless the caller
omits one). Validity bounds: `not_before` inclusive, `not_after` exclusive,
`revoked_at` inclusive (a signature made exactly at `revoked_at` is revoked).

A member's key is either a signing key (Ed25519: it signs the member's alerts) or
an encryption key (X25519: producers wrap data keys for it, see
`bus.core.confidential`). Both are one `MemberKey` with a `use`, so validity,
rotation and revocation follow one set of rules; a key only ever serves its use.

Versioning rule: every change made through `add_member`, `add_key` or
`revoke_key` returns a new directory with `version + 1` and a fresh
`issued_at`; signing never changes the content. Readers refuse a version lower
than one they already accepted (rollback).
"""

from __future__ import annotations

import base64
import binascii
import functools
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

from bus.core.keys import EncryptionPublicKey, PublicKey, SigningKey
from bus.core.models import MEMBER_ID_RE, AlertType
from bus.errors import (
    DirectoryError,
    EncryptionError,
    KeyFileError,
    RejectReason,
    UnknownKeyError,
    VerificationError,
    quote,
)

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
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is out of range once converted to UTC (years 1-9999)") from None


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


class KeyUse(StrEnum):
    """What a member key is for. Omitted in the file (and the signed form) for signing keys."""

    SIGNING = "signing"
    """Ed25519: verifies the member's alert signatures."""
    ENCRYPTION = "encryption"
    """X25519: producers wrap encrypted alerts' data keys for it (HPKE)."""


class MemberKey(BaseModel):
    """One public key of a member with its use, validity window and optional revocation.

    For an encryption key the window says when producers may encrypt *to* it: an alert
    created at time t is wrapped for a key valid at t. Revoking it stops new alerts from
    being encrypted to it; its holder can still open what was encrypted to it before.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    use: KeyUse = KeyUse.SIGNING
    public_key: str = Field(
        description="base64 of the raw 32-byte public key: Ed25519 (signing) or X25519 (encryption)"
    )
    not_before: UtcDatetime
    not_after: UtcDatetime
    revoked_at: UtcDatetime | None = None
    revocation_reason: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MemberKey:
        try:
            if self.use is KeyUse.SIGNING:
                actual = PublicKey.from_raw_b64(self.public_key).key_id
            else:
                actual = EncryptionPublicKey.from_raw_b64(self.public_key).key_id
        except KeyFileError as exc:
            raise ValueError(f"{self.use.value} key {self.key_id}: {exc}") from None
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
        cls, key: PublicKey | EncryptionPublicKey, not_before: datetime, not_after: datetime
    ) -> MemberKey:
        """A key entry of the right use for either kind of public key."""
        return cls(
            key_id=key.key_id,
            use=KeyUse.ENCRYPTION if isinstance(key, EncryptionPublicKey) else KeyUse.SIGNING,
            public_key=key.to_raw_b64(),
            not_before=not_before,
            not_after=not_after,
        )

    @property
    def public(self) -> PublicKey:
        """The Ed25519 key of a signing key (an encryption key has none)."""
        if self.use is not KeyUse.SIGNING:
            raise KeyFileError(f"key {self.key_id} is an {self.use.value} key, not a signing key")
        return PublicKey.from_raw_b64(self.public_key)

    @functools.cached_property
    def encryption_public(self) -> EncryptionPublicKey:
        """The X25519 key of an encryption key (a signing key has none); parsed and checked once."""
        if self.use is not KeyUse.ENCRYPTION:
            raise KeyFileError(f"key {self.key_id} is a {self.use.value} key, not an encryption key")
        return EncryptionPublicKey.from_raw_b64(self.public_key)

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

    def encryption_key_at(self, at: datetime) -> MemberKey | None:
        """The encryption key to wrap for at `at`: of those valid then, the newest.

        "Newest" is the latest `not_before` (then key id, so the choice is deterministic):
        once a rotated-in key is valid, new alerts use it, while alerts created
        earlier were wrapped for the old key, which its holder keeps to open them.
        """
        valid = [
            k for k in self.keys
            if k.use is KeyUse.ENCRYPTION and k.status_at(at) is KeyStatus.VALID
        ]
        return max(valid, key=lambda k: (k.not_before, k.key_id), default=None)


class FederationRouter(BaseModel):
    """A router of the federation: it signs receipts and audit checkpoints with its keys.

    Router keys are signing keys with the same validity, rotation and revocation rules as
    members' keys, listed apart: a router key never verifies an alert, and a member key
    never verifies a receipt or a checkpoint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=MEMBER_ID_RE.pattern)]
    name: Annotated[str, Field(min_length=1)]
    keys: tuple[MemberKey, ...] = ()

    @model_validator(mode="after")
    def _signing_keys_only(self) -> FederationRouter:
        for key in self.keys:
            if key.use is not KeyUse.SIGNING:
                raise ValueError(f"router {self.id}: key {key.key_id} is an {key.use.value} key; "
                                 "routers have signing keys only")
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
    routers: tuple[FederationRouter, ...] = ()
    """The federation's routers and their keys (omitted from the signed form when empty,
    so directories signed before routers were listed keep their signature)."""

    _cache: _IndexCache = PrivateAttr(default_factory=lambda: _IndexCache())

    @model_validator(mode="after")
    def _unique_ids(self) -> FederationDirectory:
        seen: set[str] = set()
        owners: dict[str, str] = {}
        holders: list[Member | FederationRouter] = [*self.members, *self.routers]
        for holder in holders:
            what = "member" if isinstance(holder, Member) else "router"
            if holder.id in seen:
                raise ValueError(f"{what} id {holder.id} appears twice (member and router ids share one namespace)")
            seen.add(holder.id)
            for key in holder.keys:
                if key.key_id in owners:
                    raise ValueError(
                        f"key id {key.key_id} is listed for both "
                        f"{owners[key.key_id]} and {holder.id}"
                    )
                owners[key.key_id] = holder.id
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

    def router(self, router_id: str) -> FederationRouter | None:
        return next((r for r in self.routers if r.id == router_id), None)

    def router_key(self, key_id: str, router_id: str, at: datetime) -> PublicKey:
        """The key `key_id` if the directory lists it for router `router_id` and it is valid at `at`.

        What verifies a receipt or an audit checkpoint. Raises `unknown-key` (no such
        router, or not its key), `key-not-yet-valid`, `key-revoked` or `key-expired`.
        """
        _require_aware(at, "time")
        router = self.router(router_id)
        where = f"federation directory {self.federation_id} v{self.version}"
        if router is None:
            raise UnknownKeyError(f"router {quote(router_id)} is not listed in {where}")
        key = router.key(key_id)
        if key is None:
            raise UnknownKeyError(f"key id {quote(key_id)} is not a key of router {router_id} in {where}")
        _check_status(key, router_id, at)
        return key.public

    # KeyResolver ---------------------------------------------------------------------
    def lookup(self, key_id: str, producer: str) -> PublicKey:
        """The key `key_id` if the directory lists it for `producer` (first question).

        Raises `unknown-key` or `key-not-owned-by-producer`; says nothing about
        validity or rights, which are only judged once the signature verified.
        """
        found = self._keys().get(key_id)
        if found is None:
            raise UnknownKeyError(
                f"key id {quote(key_id)} belongs to no member of federation directory "
                f"{self.federation_id} v{self.version}"
            )
        member, key = found
        if key.use is not KeyUse.SIGNING:
            raise UnknownKeyError(
                f"key id {key_id!r} is an {key.use.value} key of {member.id}, not a signing key"
            )
        if member.id != producer:
            raise VerificationError(
                f"key {key_id} belongs to {member.id}, not to producer {quote(producer)}",
                RejectReason.KEY_NOT_OWNED,
            )
        return key.public

    def authorize(self, key_id: str, producer: str, alert_type: str, created: datetime) -> None:
        """May this key sign an alert of `alert_type` created at `created` (second question)?

        Checks, first failure wins: not yet valid (`created < not_before`), revoked
        (`created >= revoked_at`), expired (`created >= not_after`), then the
        member's right to publish the type.
        """
        self.authorize_key(key_id, producer, created, what="alert created")
        member, _ = self._keys()[key_id]
        if str(alert_type) not in member.may_publish:
            allowed = ", ".join(member.may_publish) or "nothing"
            raise VerificationError(
                f"{member.id} may not publish {quote(str(alert_type))} (allowed: {allowed})",
                RejectReason.TYPE_NOT_ALLOWED,
            )

    def authorize_key(self, key_id: str, producer: str, at: datetime, *, what: str = "signed") -> None:
        """Was this key of `producer` valid at `at`? The key-status half of `authorize`, also
        what a signed record that is not an alert (an acknowledgement) is checked with."""
        _require_aware(at, "time")
        self.lookup(key_id, producer)  # called out of order, it refuses as lookup would
        member, key = self._keys()[key_id]
        _check_status(key, member.id, at, what)

    def resolve(self, key_id: str, producer: str, alert_type: str, created: datetime) -> PublicKey:
        """`lookup` then `authorize`: the key, if it may sign this alert (no record needed)."""
        public = self.lookup(key_id, producer)
        self.authorize(key_id, producer, alert_type, created)
        return public

    # encryption keys (RecipientKeys) --------------------------------------------------
    def encryption_key_for(self, member_id: str, at: datetime) -> EncryptionPublicKey:
        """The key a producer wraps an alert created at `at` for; EncryptionError if none.

        The error names the member, the directory version and the time, so the producer
        knows whom to ask (the member must have an encryption key added, or rotated).
        """
        _require_aware(at, "time")
        member = self.member(member_id)
        where = f"federation directory {self.federation_id} v{self.version}"
        if member is None:
            raise EncryptionError(
                [("header.release_to", f"{member_id} is not a member of {where}; cannot encrypt for it")]
            )
        key = member.encryption_key_at(at)
        if key is None:
            raise EncryptionError(
                [("header.release_to", f"{member_id} has no encryption key valid at {rfc3339(at)} in "
                  f"{where}; it must publish one (bus keygen, bus federation add-key)")]
            )
        return key.encryption_public

    def encryption_key_owner(self, key_id: str, at: datetime) -> str | None:
        """The member whose encryption key `key_id` is, if that key is valid at `at`; else None."""
        _require_aware(at, "time")
        found = self._keys().get(key_id)
        if found is None:
            return None
        member, key = found
        if key.use is not KeyUse.ENCRYPTION or key.status_at(at) is not KeyStatus.VALID:
            return None
        return member.id

    # serialisation -------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready data (RFC 3339 strings, lists); `None` fields kept.

        `use` is left out for signing keys: directories signed before encryption keys
        existed keep their exact signed bytes, and `use: signing` read from a file is
        the same model, so it signs the same bytes.
        """
        doc: dict[str, Any] = _plain(self.model_dump(mode="python"))
        for holder in [*doc["members"], *doc["routers"]]:
            for key in holder["keys"]:
                if key["use"] == KeyUse.SIGNING.value:
                    del key["use"]
        if not doc["routers"]:
            del doc["routers"]
        return doc

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


def _check_status(key: MemberKey, owner: str, at: datetime, what: str = "signed") -> None:
    """Raise the reason a signature made at `at` with this key of `owner` must not be trusted."""
    status = key.status_at(at)
    when = f"{what} {rfc3339(at)}"
    if status is KeyStatus.NOT_YET_VALID:
        raise VerificationError(
            f"key {key.key_id} of {owner} is valid from {rfc3339(key.not_before)}; {when}",
            RejectReason.KEY_NOT_YET_VALID,
        )
    if status is KeyStatus.REVOKED:
        assert key.revoked_at is not None
        why = f" ({key.revocation_reason})" if key.revocation_reason else ""
        raise VerificationError(
            f"key {key.key_id} of {owner} was revoked at {rfc3339(key.revoked_at)}{why}; {when}",
            RejectReason.KEY_REVOKED,
        )
    if status is KeyStatus.EXPIRED:
        raise VerificationError(
            f"key {key.key_id} of {owner} expired at {rfc3339(key.not_after)}; {when}",
            RejectReason.KEY_EXPIRED,
        )


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
    directory: FederationDirectory,
    members: Iterable[Member],
    issued_at: datetime | None,
    routers: Iterable[FederationRouter] | None = None,
) -> FederationDirectory:
    try:
        return FederationDirectory(
            federation_id=directory.federation_id,
            name=directory.name,
            version=directory.version + 1,
            issued_at=issued_at or utcnow(),
            members=tuple(members),
            routers=tuple(directory.routers if routers is None else routers),
        )
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise DirectoryError(f"the change would make the directory invalid: {exc}") from exc


def _require_holder(directory: FederationDirectory, holder_id: str) -> Member | FederationRouter:
    """The member, or failing that the router, with this id."""
    holder: Member | FederationRouter | None = directory.member(holder_id) or directory.router(holder_id)
    if holder is None:
        known = ", ".join(m.id for m in directory.members) or "none"
        routers = ", ".join(r.id for r in directory.routers) or "none"
        raise DirectoryError(f"no member {holder_id} in the directory (members: {known}; routers: {routers})")
    return holder


def _replace_holder(directory: FederationDirectory, updated: Member | FederationRouter,
                    issued_at: datetime | None) -> FederationDirectory:
    if isinstance(updated, Member):
        return _next(directory, [updated if m.id == updated.id else m for m in directory.members], issued_at)
    return _next(directory, directory.members, issued_at,
                 [updated if r.id == updated.id else r for r in directory.routers])


def _key_holder(directory: FederationDirectory, key_id: str) -> str | None:
    holders: list[Member | FederationRouter] = [*directory.members, *directory.routers]
    for holder in holders:
        if any(k.key_id == key_id for k in holder.keys):
            return holder.id
    return None


def add_member(
    directory: FederationDirectory, member: Member, *, issued_at: datetime | None = None
) -> FederationDirectory:
    if directory.member(member.id) is not None:
        raise DirectoryError(f"member {member.id} is already in the directory")
    return _next(directory, [*directory.members, member], issued_at)


def add_router(
    directory: FederationDirectory, router: FederationRouter, *, issued_at: datetime | None = None
) -> FederationDirectory:
    """A new router and its key(s): receipts and checkpoints it signs verify from now on."""
    if directory.router(router.id) is not None:
        raise DirectoryError(f"router {router.id} is already in the directory")
    return _next(directory, directory.members, issued_at, [*directory.routers, router])


def add_key(
    directory: FederationDirectory,
    member_id: str,
    key: MemberKey,
    *,
    issued_at: datetime | None = None,
) -> FederationDirectory:
    """Rotation step one: the new key joins; the old one keeps its own not_after.

    `member_id` may also name a router (its keys rotate the same way).
    """
    holder = _require_holder(directory, member_id)
    owner = _key_holder(directory, key.key_id)
    if owner is not None:
        raise DirectoryError(f"key {key.key_id} is already listed for {owner}")
    if isinstance(holder, FederationRouter) and key.use is not KeyUse.SIGNING:
        raise DirectoryError(f"{member_id} is a router: it has signing keys only")
    updated = holder.model_copy(update={"keys": (*holder.keys, key)})
    return _replace_holder(directory, updated, issued_at)


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
    but never later, which would quietly re-trust signatures. `member_id` may also
    name a router: its receipts and checkpoints signed at or after `at` stop verifying.
    """
    _require_aware(at, "revocation time")
    holder = _require_holder(directory, member_id)
    key = holder.key(key_id)
    if key is None:
        known = ", ".join(k.key_id for k in holder.keys) or "none"
        raise DirectoryError(f"{member_id} has no key {key_id} (keys: {known})")
    at = at.astimezone(UTC)
    if key.revoked_at is not None and at >= key.revoked_at:
        raise DirectoryError(
            f"key {key_id} is already revoked at {rfc3339(key.revoked_at)}; "
            "a revocation can only be moved earlier"
        )
    new_key = key.model_copy(update={"revoked_at": at, "revocation_reason": reason})
    new_key = MemberKey.model_validate(new_key.model_dump())
    updated = holder.model_copy(
        update={"keys": tuple(new_key if k.key_id == key_id else k for k in holder.keys)}
    )
    return _replace_holder(directory, updated, issued_at)


def bump(
    directory: FederationDirectory, *, issued_at: datetime | None = None
) -> FederationDirectory:
    """Same members and routers, next version: for re-signing content that was edited by hand."""
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
    "FederationRouter",
    "FreshnessPolicy",
    "KeyStatus",
    "KeyUse",
    "Member",
    "MemberKey",
    "MemberKind",
    "SignedDirectory",
    "add_key",
    "add_member",
    "add_router",
    "bump",
    "new_directory",
    "revoke_key",
    "rfc3339",
    "sign_directory",
    "utcnow",
    "verify_directory",
]
