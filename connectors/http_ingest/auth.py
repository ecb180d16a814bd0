"""Bearer tokens per agency system, stored only as SHA-256 hashes.

A leaked config file then gives nobody a token. Tokens are long random
secrets, so a plain hash (no salt, no KDF) is enough; comparison is constant
time so response timing does not reveal hash prefixes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from bus.errors import ConnectorConfigError
from connectors.http_ingest.config import MIN_TOKEN_CHARS, SystemToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class TokenTable:
    def __init__(self, systems: list[SystemToken], source: str = "http-ingest config") -> None:
        problems = []
        self._entries: list[tuple[bytes, SystemToken]] = []
        for system in systems:
            if system.token_env is not None:
                token = os.environ.get(system.token_env, "")
                if len(token) < MIN_TOKEN_CHARS:
                    problems.append(f"ingest.systems ({system.name}): environment variable {system.token_env} "
                                    f"must hold a token of at least {MIN_TOKEN_CHARS} characters")
                    continue
                digest = hash_token(token)
            else:
                digest = system.token_sha256 or ""
            self._entries.append((bytes.fromhex(digest), system))
        if problems:
            raise ConnectorConfigError(source, problems)

    def system_for(self, authorization: str | None) -> SystemToken | None:
        """The system whose token is in an `Authorization: Bearer ...` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for digest, system in self._entries:  # no early exit: same time whoever matches
            if hmac.compare_digest(presented, digest):
                found = system
        return found
