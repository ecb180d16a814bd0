"""Deterministic UUIDv7 message ids.

Re-reading the same input after a crash must yield the same message ids, so
that what was already published can be recognised and skipped (and the
router's replay check drops anything that slips through). A UUIDv7 whose 48
time bits come from a timestamp of the input (e.g. the file's mtime) and whose
74 remaining bits come from a SHA-256 of the input keeps the ids time-ordered
like any other UUIDv7, and valid for the header's UUIDv7 check.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from uuid import UUID


def stable_uuid7(seed: bytes | str, when: datetime) -> UUID:
    if isinstance(seed, str):
        seed = seed.encode()
    millis = int(when.timestamp() * 1000) & ((1 << 48) - 1)
    raw = bytearray(millis.to_bytes(6, "big") + hashlib.sha256(seed).digest()[:10])
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    return UUID(bytes=bytes(raw))
