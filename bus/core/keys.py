"""Ed25519 key material: generation, key ids, PEM files.

The key id is a thumbprint of the raw public key so that nobody has to trust
a name chosen by the key holder: `hex(sha256(raw_public_key))[:32]`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.errors import KeyFileError


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


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

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_raw_b64(self) -> str:
        import base64

        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @classmethod
    def from_raw_b64(cls, text: str) -> PublicKey:
        import base64

        try:
            return cls(Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True)))
        except ValueError as exc:
            raise KeyFileError(f"not a base64 Ed25519 public key: {exc}") from exc

    @classmethod
    def from_pem(cls, data: bytes, source: str = "<bytes>") -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise KeyFileError(f"{source}: not a PEM public key ({exc})") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{source}: not an Ed25519 public key")
        try:
            return cls(key)
        except KeyFileError as exc:
            raise KeyFileError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class SigningKey:
    """A member's private key together with the member id it speaks for."""

    member: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, member: str) -> SigningKey:
        return cls(member, Ed25519PrivateKey.generate())

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def to_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, member: str, data: bytes, source: str = "<bytes>") -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{source}: not an unencrypted PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{source}: not an Ed25519 private key")
        return cls(member, key)
