"""Signing and verifying run on libsodium (PyNaCl) while keys stay `cryptography` objects:
both libraries must agree on every signature, or records signed before the switch (or by a
member still on OpenSSL) would stop verifying."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bus.core.keys import PublicKey, SigningKey

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=2048)


def flip(data: bytes, index: int, bit: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


@given(seed=seeds, message=messages)
def test_the_signature_is_byte_identical_to_openssls(seed: bytes, message: bytes) -> None:
    openssl_key = Ed25519PrivateKey.from_private_bytes(seed)
    signer = SigningKey("NL-CUSTOMS", openssl_key)
    signature = signer.sign(message)
    assert signature == openssl_key.sign(message)
    assert signer.public.verify(signature, message)
    openssl_key.public_key().verify(signature, message)  # and OpenSSL accepts libsodium's


@given(seed=seeds, message=messages, in_signature=st.booleans(),
       index=st.integers(min_value=0, max_value=4096), bit=st.integers(min_value=0, max_value=7))
def test_any_changed_byte_fails_in_both_libraries(
    seed: bytes, message: bytes, in_signature: bool, index: int, bit: int
) -> None:
    signer = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(seed))
    signature = signer.sign(message)
    if in_signature:
        signature = flip(signature, index, bit)
    else:
        message = flip(message, index, bit) if message else b"\x00"
    assert not signer.public.verify(signature, message)
    with pytest.raises(InvalidSignature):
        signer.key.public_key().verify(signature, message)


@pytest.mark.parametrize("size", [0, 63, 65, 86])
def test_a_signature_of_the_wrong_size_is_false_not_an_error(size: int) -> None:
    public: PublicKey = SigningKey.generate("NL-CUSTOMS").public
    assert public.verify(bytes(size), b"message") is False


def test_the_libsodium_key_is_built_once_per_key() -> None:
    signer = SigningKey.generate("NL-CUSTOMS")
    signer.sign(b"a")
    signer.public.verify(signer.sign(b"a"), b"a")
    assert signer._signer is signer._signer
    assert signer.public._verifier is signer.public._verifier


def test_a_signature_with_a_small_order_r_is_refused_though_openssl_accepts_it() -> None:
    """docs/wire-format.md section 6: the one place libsodium is stricter than OpenSSL. The key
    holder can make `R` the identity point with `S = k·a`; OpenSSL's cofactorless check accepts
    it, the bus refuses it (an honest signer never writes one)."""
    order = 2**252 + 27742317777372353535851937790883648493
    seed = bytes(range(32))
    signer = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(seed))
    expanded = hashlib.sha512(seed).digest()
    scalar = (int.from_bytes(expanded[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    identity, message = b"\x01" + bytes(31), b"a crafted signature"
    public = signer.key.public_key().public_bytes_raw()
    k = int.from_bytes(hashlib.sha512(identity + public + message).digest(), "little") % order
    crafted = identity + (k * scalar % order).to_bytes(32, "little")
    signer.key.public_key().verify(crafted, message)  # OpenSSL: valid
    assert signer.public.verify(crafted, message) is False
