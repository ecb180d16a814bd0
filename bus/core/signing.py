"""The record signature: what exactly is signed, sign, verify.

The signature covers the record key, a fixed list of headers and the value as
they travel on the wire, so a verifier needs nothing but the received bytes (no
re-serialisation, no schema). The topic is deliberately not covered: routers
forward records unchanged to other topics. Layout: docs/wire-format.md.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from bus.core.keys import PublicKey, SigningKey
from bus.errors import SignatureError

Headers = Sequence[tuple[str, bytes | None]]

#: Prefix of every signing input, so a bus signature can never be replayed as
#: a signature over some other structure made with the same key.
DOMAIN = b"EPA-BUS-SIG/1\x00"

#: Headers covered by the signature, in signing order.
COVERED_HEADERS: tuple[str, ...] = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "content-type",
    "bus_keyid",
)

#: Header carrying the raw 64-byte Ed25519 signature.
SIGNATURE_HEADER = "bus_sig"
SIGNATURE_SIZE = 64

#: Length prefix marking a null record key (distinct from an empty key).
NULL_LENGTH = 0xFFFFFFFF
_MAX_PART = NULL_LENGTH - 1
_COVERED = frozenset(COVERED_HEADERS)


def _part(data: bytes) -> bytes:
    if len(data) > _MAX_PART:
        raise SignatureError(f"signed part of {len(data)} bytes is too large")
    return struct.pack(">I", len(data)) + data


def covered_values(headers: Headers) -> dict[str, bytes]:
    """Each covered header's value; missing or repeated ones are an error.

    Repeats fail instead of picking one: a verifier that picked the first and a
    consumer that picked the last would otherwise disagree on a signed value.
    """
    found: dict[str, bytes] = {}
    for name, value in headers:
        if name not in _COVERED:
            continue
        if name in found:
            raise SignatureError(f"covered header {name!r} appears more than once")
        if value is None:
            raise SignatureError(f"covered header {name!r} has no value")
        found[name] = bytes(value)
    missing = [name for name in COVERED_HEADERS if name not in found]
    if missing:
        raise SignatureError(f"covered header(s) missing: {', '.join(missing)}")
    return found


def signing_input(key: bytes | None, headers: Headers, value: bytes) -> bytes:
    """The exact bytes the Ed25519 signature is made over."""
    found = covered_values(headers)
    parts = [DOMAIN]
    parts.append(struct.pack(">I", NULL_LENGTH) if key is None else _part(bytes(key)))
    for name in COVERED_HEADERS:
        parts.append(_part(name.encode("ascii")))
        parts.append(_part(found[name]))
    parts.append(_part(bytes(value)))
    return b"".join(parts)


def signature_of(headers: Headers) -> bytes:
    """The single `bus_sig` header's value (exactly once, exactly 64 bytes)."""
    sigs = [value for name, value in headers if name == SIGNATURE_HEADER]
    if not sigs:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    if len(sigs) > 1:
        raise SignatureError(f"{SIGNATURE_HEADER} header appears {len(sigs)} times")
    sig = sigs[0]
    if sig is None or len(sig) != SIGNATURE_SIZE:
        size = 0 if sig is None else len(sig)
        raise SignatureError(f"{SIGNATURE_HEADER} must be {SIGNATURE_SIZE} bytes, got {size}")
    return bytes(sig)


def sign_record(
    signer: SigningKey, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes
) -> list[tuple[str, bytes]]:
    """`headers` plus the `bus_sig` header (appended last)."""
    if any(name == SIGNATURE_HEADER for name, _ in headers):
        raise SignatureError(f"record already carries a {SIGNATURE_HEADER} header")
    signature = signer.sign(signing_input(key, headers, value))
    return [*headers, (SIGNATURE_HEADER, signature)]


def verify_record(public_key: PublicKey, key: bytes | None, headers: Headers, value: bytes) -> None:
    """Raise SignatureError unless `bus_sig` is `public_key`'s signature over the record."""
    signature = signature_of(headers)
    if not public_key.verify(signature, signing_input(key, headers, value)):
        raise SignatureError(f"signature does not verify with key {public_key.key_id}")
