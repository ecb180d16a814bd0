"""Bounds on everything the router copies from a record nobody has vouched for.

An attacker who may write to one `alerts.*` topic controls every byte of a record:
header names and values, key and value, of any size. Whatever of it the router
writes somewhere else (audit entries, dead-letter detail headers, receipts, log
fields, metric labels) goes through here, so no input can make those outputs big,
unprintable, or unlike what they claim to be:

- `bounded(value)`: a value that is printable ASCII and at most `COPY_LIMIT` bytes is
  copied as text; anything else (longer, binary, not UTF-8, null) is described by its
  length and a SHA-256 prefix, which still lets an investigator match it to the record;
- `capped(text)`: a detail of free text, at most `DETAIL_LIMIT` characters.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any

COPY_LIMIT = 128
"""Bytes of an untrusted value copied as it is (more: length and hash only)."""
DETAIL_LIMIT = 512
"""Characters of a free-text detail (verdict explanations quote untrusted values)."""
HASH_PREFIX = 16
"""Hex digits of SHA-256 kept to identify a value that was not copied."""

Bounded = str | dict[str, Any] | None
"""What `bounded` gives: the text, a {"len", "sha256"} description, or None for a null."""


def _printable_ascii(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in data)


def digest(data: bytes, digits: int = HASH_PREFIX) -> str:
    """The first `digits` hex digits of SHA-256(data)."""
    return hashlib.sha256(data).hexdigest()[:digits]


def bounded(value: bytes | str | None) -> Bounded:
    """Copy a short printable value; describe anything else by length and hash prefix.

    Text is measured as its UTF-8 bytes (lone surrogates from undecodable input
    included, as `surrogateescape` bytes), so the rule is the same for both.
    """
    if value is None:
        return None
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    if len(data) <= COPY_LIMIT and _printable_ascii(data):
        return data.decode("ascii")
    return {"len": len(data), "sha256": digest(data)}


def bounded_text(value: bytes | str | None) -> str:
    """`bounded` as one short string, for log fields and header values: `<len=N sha256=...>`."""
    found = bounded(value)
    if found is None:
        return "<null>"
    if isinstance(found, str):
        return found
    return f"<len={found['len']} sha256={found['sha256']}>"


def capped(text: str, limit: int = DETAIL_LIMIT) -> str:
    """At most `limit` characters of `text`, the cut marked with the original length."""
    if len(text) <= limit:
        return text
    marker = f"...({len(text)} characters)"
    return text[: max(0, limit - len(marker))] + marker


def label(value: str, vocabulary: frozenset[str] | set[str], other: str = "other") -> str:
    """A metric label from a bounded vocabulary: anything outside it is `other`."""
    return value if value in vocabulary else other
