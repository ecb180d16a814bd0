"""The record signature: what exactly is signed, sign, verify, and which format it is in.

The signature covers the record key, a fixed list of headers and the value as
they travel on the wire, so a verifier needs nothing but the received bytes (no
re-serialisation, no schema). The topic is deliberately not covered: routers
forward records unchanged to other topics. Layout: docs/wire-format.md.

Two formats exist. 1.1 (what `sign_record` writes) signs under the domain
`EPA-BUS-SIG/1.1` and writes the signature as 86 base64url characters, so every
header is printable ASCII and ordinary tools (CloudEvents SDKs, kcat, Kafka's
console consumer) can read the records. 1.0 wrote the raw 64 bytes under
`EPA-BUS-SIG/1`; verifiers accept it until the end of a transition window. The
value's length alone says which format a `bus_sig` is in (64 bytes or 86 characters).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bus.core.keys import PublicKey, SigningKey
from bus.errors import RejectReason, SchemaError, SignatureError, VerificationError

Headers = Sequence[tuple[str, bytes | None]]


class WireVersion(StrEnum):
    """Versions of the record signature format (docs/wire-format.md)."""

    V1_0 = "1.0"
    V1_1 = "1.1"


CURRENT_VERSION = WireVersion.V1_1
"""The format `sign_record` writes."""

#: Prefix of every signing input, per format, so a bus signature can never be replayed
#: as a signature over some other structure (or the other format) made with the same key.
DOMAINS: dict[WireVersion, bytes] = {
    WireVersion.V1_0: b"EPA-BUS-SIG/1\x00",
    WireVersion.V1_1: b"EPA-BUS-SIG/1.1\x00",
}
DOMAIN = DOMAINS[CURRENT_VERSION]

V1_0_ACCEPTED_UNTIL = datetime(2027, 6, 1, tzinfo=UTC)
"""End of the 1.0 transition window (exclusive), compared with the record's signed `ce_time`:
a 1.0 record created before it still verifies, one created at or after it is
`unsupported-format`. Routers and readers take another date as an option."""

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

#: Header carrying the Ed25519 signature.
SIGNATURE_HEADER = "bus_sig"
SIGNATURE_SIZE = 64
"""Raw Ed25519 signature bytes (and the size of a 1.0 `bus_sig` value)."""
ENCODED_SIGNATURE_SIZE = 86
"""Characters of a 1.1 `bus_sig` value: 64 bytes in base64url without padding."""
# 86 characters carry 516 bits: the last one holds 2 signature bits and 4 zero bits,
# so only A, Q, g and w may end it. Anything else would be a second spelling.
_ENCODED_SIGNATURE = re.compile(rb"[A-Za-z0-9_-]{85}[AQgw]")

#: Length prefix marking a null record key (distinct from an empty key).
NULL_LENGTH = 0xFFFFFFFF
_MAX_PART = NULL_LENGTH - 1
_COVERED = frozenset(COVERED_HEADERS)


@dataclass(frozen=True)
class Signature:
    """A `bus_sig` value, decoded: its format and the raw 64 signature bytes."""

    version: WireVersion
    raw: bytes


_LENGTH = struct.Struct(">I").pack


def _part(data: bytes) -> bytes:
    if len(data) > _MAX_PART:
        raise SignatureError(f"signed part of {len(data)} bytes is too large")
    return _LENGTH(len(data)) + data


#: Each covered header's name as the signing input writes it (length-prefixed), computed once.
_NAME_PARTS: tuple[tuple[str, bytes], ...] = tuple((name, _part(name.encode("ascii"))) for name in COVERED_HEADERS)
_NULL_KEY = struct.pack(">I", NULL_LENGTH)


def covered_values(headers: Headers) -> dict[str, bytes]:
    """Each covered header's value.

    Counting comes first: a missing or repeated covered header is `bad-signature`
    (the signed set is ambiguous: a verifier that picked the first copy and a
    consumer that picked the last would disagree on a signed value). Then a
    present header with a null value is `bad-schema`: no null matches any
    header's rule, as an empty value matches none either.
    """
    found: dict[str, list[bytes | None]] = {}
    for name, value in headers:
        if name in _COVERED:
            found.setdefault(name, []).append(value)
    repeated = [name for name in COVERED_HEADERS if len(found.get(name, ())) > 1]
    if repeated:
        raise SignatureError(f"covered header {repeated[0]!r} appears more than once")
    missing = [name for name in COVERED_HEADERS if name not in found]
    if missing:
        raise SignatureError(f"covered header(s) missing: {', '.join(missing)}")
    values: dict[str, bytes] = {}
    for name in COVERED_HEADERS:
        value = found[name][0]
        if value is None:
            raise SchemaError(f"covered header {name!r} has a null value")
        values[name] = bytes(value)
    return values


def signing_input(
    key: bytes | None, headers: Headers, value: bytes, version: WireVersion = CURRENT_VERSION
) -> bytes:
    """The exact bytes the Ed25519 signature is made over, in format `version`."""
    return covered_signing_input(key, covered_values(headers), value, version)


def covered_signing_input(
    key: bytes | None, found: dict[str, bytes], value: bytes, version: WireVersion = CURRENT_VERSION
) -> bytes:
    """`signing_input` from the covered values `covered_values` already extracted."""
    parts = [DOMAINS[version], _NULL_KEY if key is None else _part(bytes(key))]
    for name, name_part in _NAME_PARTS:
        parts += (name_part, _part(found[name]))
    parts.append(_part(bytes(value)))
    return b"".join(parts)


def encode_signature(raw: bytes) -> bytes:
    """A 1.1 `bus_sig` value: base64url (RFC 4648 section 5) without padding."""
    if len(raw) != SIGNATURE_SIZE:
        raise SignatureError(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(raw)}")
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def signature_of(headers: Headers) -> Signature:
    """The single `bus_sig` header, decoded; its shape says its format.

    64 bytes: a 1.0 raw signature. 86 characters of the base64url alphabet (in
    its one canonical spelling): a 1.1 signature. Anything else, a missing,
    repeated or null `bus_sig` included, is `bad-signature`.
    """
    sigs = [value for name, value in headers if name == SIGNATURE_HEADER]
    if not sigs:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    if len(sigs) > 1:
        raise SignatureError(f"{SIGNATURE_HEADER} header appears {len(sigs)} times")
    sig = sigs[0]
    if sig is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header has a null value")
    sig = bytes(sig)
    if len(sig) == SIGNATURE_SIZE:
        return Signature(WireVersion.V1_0, sig)
    if len(sig) == ENCODED_SIGNATURE_SIZE:
        if not _ENCODED_SIGNATURE.fullmatch(sig):
            raise SignatureError(
                f"{SIGNATURE_HEADER} is 86 bytes but not canonical unpadded base64url"
            )
        return Signature(WireVersion.V1_1, base64.urlsafe_b64decode(sig + b"=="))
    raise SignatureError(
        f"{SIGNATURE_HEADER} must be {ENCODED_SIGNATURE_SIZE} base64url characters (format 1.1) "
        f"or {SIGNATURE_SIZE} raw bytes (format 1.0), got {len(sig)} bytes"
    )


def sign_record(
    signer: SigningKey, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes
) -> list[tuple[str, bytes]]:
    """`headers` plus the `bus_sig` header (appended last), always in the current format."""
    if any(name == SIGNATURE_HEADER for name, _ in headers):
        raise SignatureError(f"record already carries a {SIGNATURE_HEADER} header")
    signature = signer.sign(signing_input(key, headers, value, CURRENT_VERSION))
    return [*headers, (SIGNATURE_HEADER, encode_signature(signature))]


def sign_built(
    signer: SigningKey, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes
) -> list[tuple[str, bytes]]:
    """`sign_record` for headers exactly as `bus.core.envelope.build_headers` wrote them: each
    covered header once, none null, no `bus_sig`. The publisher seals every record this way,
    so the checks `sign_record` makes on headers from elsewhere are skipped; the output is
    the same."""
    signature = signer.sign(covered_signing_input(key, dict(headers), value, CURRENT_VERSION))
    return [*headers, (SIGNATURE_HEADER, encode_signature(signature))]


def verify_record(
    public_key: PublicKey, key: bytes | None, headers: Headers, value: bytes
) -> WireVersion:
    """Raise SignatureError unless `bus_sig` is `public_key`'s signature over the record.

    Returns the format the record was signed in; whether that format is still
    accepted is `require_supported`'s question.
    """
    return verify_covered(public_key, key, covered_values(headers), signature_of(headers), value)


def verify_covered(
    public_key: PublicKey, key: bytes | None, found: dict[str, bytes], signature: Signature, value: bytes
) -> WireVersion:
    """`verify_record` from the covered values and the `bus_sig` already extracted from the
    headers (`covered_values`, `signature_of`): a verifier that parsed them once need not again."""
    if not public_key.verify(signature.raw, covered_signing_input(key, found, value, signature.version)):
        raise SignatureError(
            f"signature (format {signature.version}) does not verify with key {public_key.key_id}"
        )
    return signature.version


def require_supported(
    version: WireVersion, created: datetime, accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL
) -> None:
    """Raise `unsupported-format` for a 1.0 record created at or after the window's end."""
    if version is WireVersion.V1_0 and created >= accept_v1_0_until:
        raise VerificationError(
            f"wire format 1.0 (raw bus_sig) was accepted for records created before "
            f"{accept_v1_0_until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}; this one was created "
            f"{created.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z: sign with format 1.1",
            RejectReason.UNSUPPORTED_FORMAT,
        )
