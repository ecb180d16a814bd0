"""Key material: Ed25519 signing keys and X25519 encryption keys; key ids, PEM files.

The key id is a thumbprint of the raw public key so that nobody has to trust
a name chosen by the key holder: `hex(sha256(raw_public_key))[:32]`, the same
rule for both kinds of key (the directory keeps key ids unique across both).

Ed25519 keys are held as `cryptography` objects (PEM files, raw forms, key checks), but
every signature is made and checked by libsodium through PyNaCl, which does both in less
CPU here (the publisher signs and the router verifies and signs once per record).
Ed25519 is deterministic (RFC 8032), so both libraries give the same 64 bytes for one key
and message. Each key builds its PyNaCl twin once, on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey as NaclSigningKey
from nacl.signing import VerifyKey as NaclVerifyKey

from bus.errors import KeyFileError

RAW_KEY_SIZE = 32
"""Raw public keys of both kinds are 32 bytes."""

_Built = TypeVar("_Built")


# -- PEM, for both kinds of key ---------------------------------------------------------------


def _pem_public(data: bytes, source: str) -> PublicKeyTypes:
    try:
        return serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{source}: not a PEM public key ({exc})") from exc


def _pem_private(data: bytes, source: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source}: not an unencrypted PEM private key ({exc})") from exc


def _private_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _named(source: str, build: Callable[[], _Built]) -> _Built:
    """`build()`, with a key check's refusal prefixed by the file it came from."""
    try:
        return build()
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None


def thumbprint(raw_public_key: bytes) -> str:
    """The key id of a raw public key: first 32 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()[:32]


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return thumbprint(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


_P = 2**255 - 19
# The y coordinates of the 8 points of small order (orders 1, 2, 4 and 8) on edwards25519:
# 0, 1, p-1 and the two order-8 values. Each point's encoding is its y (little-endian) with
# the sign of x in the top bit, so masking that bit covers every encoding of them.
_SMALL_ORDER_Y = frozenset({
    0,
    1,
    _P - 1,
    int.from_bytes(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
    int.from_bytes(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"),
})


def weak_public_key(raw: bytes) -> str | None:
    """Why a raw Ed25519 public key must not be trusted, or None.

    OpenSSL (and RFC 8032) verify against any point, but a key of small order
    admits signatures that verify for *every* message (the identity key with
    R = identity, S = 0, for one), and a non-canonical encoding gives one key
    two key ids. Neither comes out of real key generation, so both are refused
    wherever a public key is read.
    """
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P:
        return "non-canonical encoding (y >= 2^255 - 19)"
    if y in _SMALL_ORDER_Y:
        return "a point of small order (signatures with it prove nothing)"
    return None


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey

    def __post_init__(self) -> None:
        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        problem = weak_public_key(raw)
        if problem is not None:
            raise KeyFileError(f"Ed25519 public key {raw.hex()} is {problem}")

    @cached_property
    def key_id(self) -> str:
        """Computed once: every record a key signs or verifies names it."""
        return key_id_of(self.key)

    @cached_property
    def _verifier(self) -> NaclVerifyKey:
        """libsodium's view of this key, built once (see the module docstring)."""
        return NaclVerifyKey(self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature over `data`.

        libsodium is stricter than OpenSSL only on signatures no signer produces (a
        small-order or non-canonical R): those are refused here, as forgeries should be.
        """
        try:
            self._verifier.verify(bytes(data), bytes(signature))
        except (BadSignatureError, ValueError, TypeError):  # a wrong length is a bad signature
            return False
        return True

    def to_pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_raw_b64(self) -> str:
        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @classmethod
    def from_raw_b64(cls, text: str) -> PublicKey:
        try:
            return cls(Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True)))
        except ValueError as exc:
            raise KeyFileError(f"not a base64 Ed25519 public key: {exc}") from exc

    @classmethod
    def from_pem(cls, data: bytes, source: str = "<bytes>") -> PublicKey:
        key = _pem_public(data, source)
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{source}: not an Ed25519 public key")
        return _named(source, lambda: cls(key))


@dataclass(frozen=True)
class SigningKey:
    """A member's private key together with the member id it speaks for."""

    member: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, member: str) -> SigningKey:
        return cls(member, Ed25519PrivateKey.generate())

    @cached_property
    def public(self) -> PublicKey:
        """Derived once (and checked once): a router names its key in every receipt it signs."""
        return PublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @cached_property
    def _signer(self) -> NaclSigningKey:
        """libsodium's view of this key (from its 32-byte seed), built once."""
        seed = self.key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return NaclSigningKey(seed)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature over `data` (identical to `cryptography`'s: RFC 8032)."""
        return self._signer.sign(bytes(data)).signature

    def to_pem(self) -> bytes:
        return _private_pem(self.key)

    @classmethod
    def from_pem(cls, member: str, data: bytes, source: str = "<bytes>") -> SigningKey:
        key = _pem_private(data, source)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{source}: not an Ed25519 private key")
        return cls(member, key)


# -- X25519 encryption keys -----------------------------------------------------------------

#: 2^255 - 19: a canonical X25519 public key (little-endian u-coordinate) is below it.
_FIELD_PRIME = 2**255 - 19
#: Any scalar will do: X25519 with a small-order point gives the all-zero secret, which
#: OpenSSL refuses to return. Fixed, so checking a key is deterministic and cheap.
_PROBE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _check_canonical(raw: bytes) -> None:
    """The encoding itself: 32 bytes, u-coordinate below 2^255 - 19 (so the top bit is clear).

    A non-canonical encoding would give one key two key ids.
    """
    if len(raw) != RAW_KEY_SIZE:
        raise KeyFileError(f"an X25519 public key is {RAW_KEY_SIZE} bytes, got {len(raw)}")
    if int.from_bytes(raw, "little") >= _FIELD_PRIME:
        raise KeyFileError("not a canonical X25519 public key (u-coordinate >= 2^255-19 or top bit set)")


def _check_order(key: X25519PublicKey) -> None:
    """A small-order "public key" makes every shared secret all-zero: readable by everyone."""
    try:
        _PROBE.exchange(key)
    except ValueError:
        raise KeyFileError(
            "X25519 public key is a small-order point (every shared secret would be zero); refused"
        ) from None


@dataclass(frozen=True)
class EncryptionPublicKey:
    """A member's X25519 public key: what producers wrap data keys for (HPKE, RFC 9180)."""

    key: X25519PublicKey

    def __post_init__(self) -> None:
        _check_canonical(self.raw)
        _check_order(self.key)

    @property
    def raw(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return thumbprint(self.raw)

    def to_pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_raw_b64(self) -> str:
        return base64.b64encode(self.raw).decode()

    @classmethod
    def from_raw(cls, raw: bytes) -> EncryptionPublicKey:
        """Refuses wrong sizes, non-canonical encodings and small-order points (KeyFileError)."""
        _check_canonical(raw)  # before loading: a loader may silently mask the top bit
        return cls(X25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_raw_b64(cls, text: str) -> EncryptionPublicKey:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"not a base64 X25519 public key: {exc}") from exc
        return cls.from_raw(raw)

    @classmethod
    def from_pem(cls, data: bytes, source: str = "<bytes>") -> EncryptionPublicKey:
        key = _pem_public(data, source)
        if not isinstance(key, X25519PublicKey):
            raise KeyFileError(f"{source}: not an X25519 public key")
        return _named(source, lambda: cls(key))


@dataclass(frozen=True)
class DecryptionKey:
    """A member's X25519 private key, with the member id it reads for. Never leaves the member."""

    member: str
    key: X25519PrivateKey

    @classmethod
    def generate(cls, member: str) -> DecryptionKey:
        return cls(member, X25519PrivateKey.generate())

    @property
    def public(self) -> EncryptionPublicKey:
        return EncryptionPublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def to_pem(self) -> bytes:
        return _private_pem(self.key)

    @classmethod
    def from_pem(cls, member: str, data: bytes, source: str = "<bytes>") -> DecryptionKey:
        key = _pem_private(data, source)
        if not isinstance(key, X25519PrivateKey):
            raise KeyFileError(f"{source}: not an X25519 private key (an encryption key)")
        return cls(member, key)


def public_key_from_pem(data: bytes, source: str = "<bytes>") -> PublicKey | EncryptionPublicKey:
    """A PEM public key of either kind: Ed25519 (signing) or X25519 (encryption)."""
    key = _pem_public(data, source)
    if isinstance(key, Ed25519PublicKey):
        return _named(source, lambda: PublicKey(key))
    if isinstance(key, X25519PublicKey):
        return EncryptionPublicKey.from_pem(data, source)
    raise KeyFileError(f"{source}: neither an Ed25519 (signing) nor an X25519 (encryption) public key")
