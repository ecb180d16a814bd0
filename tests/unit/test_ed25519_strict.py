"""Ed25519 strictness: canonical S, small-order and non-canonical public keys refused."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.core.keys import _SMALL_ORDER_Y, PublicKey, SigningKey, weak_public_key
from bus.core.trust import MemberKey
from bus.errors import KeyFileError

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (0, 1)


def x_of(y: int) -> list[int]:
    """Both x with (x, y) on edwards25519 (RFC 8032 5.1.3 decoding), [] if none."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == (-u) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if v * x * x % P != u % P:
        return []
    return sorted({x, (-x) % P})


def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def times(k: int, point: tuple[int, int]) -> tuple[int, int]:
    result = IDENTITY
    for _ in range(k):
        result = add(result, point)
    return result


def test_the_blocklist_is_exactly_the_eight_points_of_small_order() -> None:
    points = {(x, y) for y in _SMALL_ORDER_Y for x in x_of(y)}
    assert len(points) == 8  # the whole torsion subgroup E[8] of edwards25519
    assert all(times(8, p) == IDENTITY for p in points)
    assert sorted(min(k for k in (1, 2, 4, 8) if times(k, p) == IDENTITY) for p in points) == [1, 2, 4, 4, 8, 8, 8, 8]


@pytest.mark.parametrize("y", sorted(_SMALL_ORDER_Y))
@pytest.mark.parametrize("sign", [0, 1])
def test_every_encoding_of_a_small_order_point_is_refused(y: int, sign: int) -> None:
    raw = (y | sign << 255).to_bytes(32, "little")
    assert weak_public_key(raw) is not None
    with pytest.raises(KeyFileError, match="small order"):
        PublicKey.from_raw_b64(base64.b64encode(raw).decode())


def test_why_it_matters_the_identity_key_verifies_anything() -> None:
    """OpenSSL alone accepts R = identity, S = 0 for every message under the identity key."""
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)
    Ed25519PublicKey.from_public_bytes(identity).verify(forged, b"any message at all")
    with pytest.raises(KeyFileError):
        PublicKey(Ed25519PublicKey.from_public_bytes(identity))


@pytest.mark.parametrize("y", [P, P + 1, P + 5, 2**255 - 1])
def test_non_canonical_encodings_are_refused(y: int) -> None:
    assert weak_public_key(y.to_bytes(32, "little")) == "non-canonical encoding (y >= 2^255 - 19)"


def test_real_keys_pass() -> None:
    for _ in range(20):
        SigningKey.generate("NL-CUSTOMS").public  # noqa: B018 (constructing it runs the check)


def test_the_directory_refuses_a_small_order_key() -> None:
    raw = bytes([1]) + bytes(31)
    with pytest.raises(ValueError, match="small order"):
        MemberKey(key_id=hashlib.sha256(raw).hexdigest()[:32], public_key=base64.b64encode(raw).decode(),
                  not_before=datetime(2026, 1, 1, tzinfo=UTC), not_after=datetime(2027, 1, 1, tzinfo=UTC))


def test_a_pem_file_with_a_small_order_key_is_refused() -> None:
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(
        bytes.fromhex("302a300506032b6570032100") + bytes([1]) + bytes(31)) + b"\n-----END PUBLIC KEY-----\n"
    with pytest.raises(KeyFileError, match=r"x\.pub: .*small order"):
        PublicKey.from_pem(pem, source="x.pub")


def test_a_non_canonical_s_does_not_verify() -> None:
    """S + L is the same scalar mod L; RFC 8032 requires S < L, and so do we (via OpenSSL)."""
    signer = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    signature = signer.sign(b"message")
    s = int.from_bytes(signature[32:], "little")
    assert signer.public.verify(signature, b"message")
    assert not signer.public.verify(signature[:32] + (s + L).to_bytes(32, "little"), b"message")

