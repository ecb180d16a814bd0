"""TAXII 2.1 media types and content negotiation.

Every TAXII response is `application/taxii+json;version=2.1`, exactly. A request says
what it accepts: `application/taxii+json;version=2.1`, or `application/taxii+json`
without a version (the server then answers in the newest it has, 2.1). Anything else
(`application/json`, `*/*`, TAXII 2.0's `application/vnd.oasis.taxii+json`, a version
we do not speak) gets 406. A request without an Accept header accepts anything (HTTP's
rule), so it is answered in 2.1. A request body (adding objects) must be of the TAXII
media type, else 415.
"""

from __future__ import annotations

__all__ = ["TAXII_MEDIA_TYPE", "TAXII_VERSION", "accepts_taxii", "is_taxii"]

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
TAXII_VERSION = "2.1"
_TAXII = "application/taxii+json"


def _media_range(text: str) -> tuple[str, dict[str, str]]:
    kind, *params = text.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), parsed


def _quality(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def _is_ours(kind: str, params: dict[str, str]) -> bool:
    return kind == _TAXII and params.get("version", TAXII_VERSION) == TAXII_VERSION


def accepts_taxii(accept: str | None) -> bool:
    """True if an Accept header lets us answer in TAXII 2.1 (no header: yes)."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        kind, params = _media_range(item)
        if _is_ours(kind, params) and _quality(params) > 0:
            return True
    return False


def is_taxii(content_type: str | None) -> bool:
    """True if a request body's Content-Type is TAXII 2.1."""
    if not content_type:
        return False
    kind, params = _media_range(content_type)
    return _is_ours(kind, params)
