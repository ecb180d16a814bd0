"""Who is asking: a TAXII client authenticated the way the console signs officers in.

- **password mode** (the console's `--users`): HTTP Basic with an account of the same
  users file. Platforms get an account of their own (`bus console add-user opencti`),
  which can be removed without touching the officers'. Five wrong passwords for a name
  lock it for a minute, exactly as the sign-in page does (the same counter).
- **proxy mode** (`--proxy-user-header`): the reverse proxy authenticates the client
  (a client certificate, or its own Basic check) and names it in the header; the
  header is believed only from the trusted proxy addresses.

argon2id is slow by design (tens of milliseconds and 64 MiB per check), and a TAXII
client sends its password with every request. A successful check is therefore
remembered for a few minutes as an HMAC of the password under a key made at start,
bound to the user's current hash: a new password or a removed user ends it at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request

from bus.web.console.auth import Authenticator

__all__ = ["CACHE_SECONDS", "Identified", "TaxiiAuth"]

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Identified:
    """The outcome: `client` when authenticated; otherwise `locked` says whether to come back later."""

    client: str | None
    locked: bool = False
    bypassed_proxy: bool = False
    """Proxy mode, and the request did not come from the trusted proxy: refused (403), as by the console."""
    problem: str = "credentials are required: HTTP Basic with a console account"


@dataclass
class TaxiiAuth:
    auth: Authenticator
    seconds: float = CACHE_SECONDS
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _verified: dict[str, tuple[bytes, str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def identify(self, request: Request) -> Identified:
        if self.auth.proxy_mode:
            if not self.auth.from_trusted_proxy(request):
                return Identified(None, bypassed_proxy=True,
                                  problem="this server accepts requests only through its reverse proxy")
            named = self.auth.officer(request)
            if named is None:
                return Identified(None, problem="the reverse proxy named no client: it must authenticate it")
            return Identified(named)
        credentials = _basic(request.headers.get("authorization"))
        if credentials is None:
            return Identified(None)
        name, password = credentials
        return self._check(name, password)

    def _check(self, name: str, password: str) -> Identified:
        users = self.auth.users
        if users is None:
            return Identified(None, problem="no accounts are configured on this server")
        user = users.get(name)
        digest = hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            remembered = self._verified.get(name)
        if (user is not None and remembered is not None and remembered[1] == user.hash and remembered[2] > now
                and hmac.compare_digest(remembered[0], digest)):
            return Identified(name)
        throttle = self.auth.throttle
        if throttle.locked(name):
            return Identified(None, locked=True,
                              problem="too many failed attempts for this name; try again in a minute")
        if not users.verify(name, password) or user is None:
            throttle.failed(name)
            return Identified(None, problem="wrong user name or password")
        throttle.succeeded(name)
        with self._lock:
            self._verified[name] = (digest, user.hash, now + self.seconds)
        return Identified(name)


def _basic(header: str | None) -> tuple[str, str] | None:
    """(name, password) from `Authorization: Basic ...`, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, password = decoded.partition(":")
    return (name, password) if colon and name else None
