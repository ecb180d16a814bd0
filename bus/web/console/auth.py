"""Who is looking: officers signed in with a password, or named by a trusted reverse proxy.

Two modes, one at a time:

- **password** (default): accounts from the users file (`bus.adapters.users_file`);
  a signed session cookie (HttpOnly, SameSite=Strict, Secure behind TLS) holds the
  officer's name. Repeated wrong passwords for one name are slowed down.
- **proxy**: a reverse proxy that has authenticated the officer (SSO, client
  certificates...) sets a header, e.g. `X-Forwarded-User`. The header is believed
  only from the proxy's own addresses (`trusted_proxies`); from anywhere else the
  request is refused, so a client that reaches the console directly cannot name itself.

Every state-changing request (sign-in, sign-out, acknowledgements) carries the
session's CSRF token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.requests import Request

from bus.adapters.users_file import UsersFile

SESSION_OFFICER = "officer"
SESSION_CSRF = "csrf"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """`127.0.0.1`, `10.0.0.0/8`, `::1` -> networks (ValueError names the bad one)."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {value!r} is not an IP address or network") from None
    return tuple(out)


@dataclass
class SignInThrottle:
    """After MAX_FAILURES wrong passwords for a name, refuse that name for LOCKOUT_SECONDS."""

    failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def locked(self, name: str) -> bool:
        with self.lock:
            count, last = self.failures.get(name, (0, 0.0))
            if count >= MAX_FAILURES and time.monotonic() - last < LOCKOUT_SECONDS:
                return True
            if count >= MAX_FAILURES:
                self.failures.pop(name, None)
            return False

    def failed(self, name: str) -> None:
        with self.lock:
            count, _ = self.failures.get(name, (0, 0.0))
            self.failures[name] = (count + 1, time.monotonic())

    def succeeded(self, name: str) -> None:
        with self.lock:
            self.failures.pop(name, None)


@dataclass(frozen=True)
class Authenticator:
    users: UsersFile | None = None
    proxy_header: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    throttle: SignInThrottle = field(default_factory=SignInThrottle)

    @property
    def proxy_mode(self) -> bool:
        return self.proxy_header is not None

    def from_trusted_proxy(self, request: Request) -> bool:
        host = request.client.host if request.client else None
        if host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def officer(self, request: Request) -> str | None:
        """The signed-in officer, or None."""
        if self.proxy_header is not None:
            if not self.from_trusted_proxy(request):
                return None
            named = request.headers.get(self.proxy_header, "").strip()
            return named[:128] if named and named.isprintable() else None
        name = request.session.get(SESSION_OFFICER)
        if not isinstance(name, str):
            return None
        # A user removed from the file is signed out at the next request.
        return name if self.users is not None and self.users.exists(name) else None

    def sign_in(self, request: Request, name: str, password: str) -> str | None:
        """Check a password; on success start a fresh session. Returns why not, or None."""
        if self.users is None:
            return "password sign-in is not enabled on this console"
        if self.throttle.locked(name):
            return f"too many failed sign-ins for this name; try again in {int(LOCKOUT_SECONDS)} s"
        if not self.users.verify(name, password):
            self.throttle.failed(name)
            return "wrong user name or password"
        self.throttle.succeeded(name)
        request.session.clear()
        request.session[SESSION_OFFICER] = name
        request.session[SESSION_CSRF] = secrets.token_urlsafe(24)
        return None


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session[SESSION_CSRF] = token
    return token


def csrf_ok(request: Request, presented: str | None) -> bool:
    token = request.session.get(SESSION_CSRF)
    return isinstance(token, str) and presented is not None and hmac.compare_digest(token, presented)


__all__ = ["Authenticator", "SignInThrottle", "csrf_ok", "csrf_token", "parse_networks"]
