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


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey

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
        return cls(key)


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
