"""Where the router gets its policy and keys, and how it notices they changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bus.core.keyring import KeyResolver
from bus.core.policy import Policy
from bus.errors import BusError


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


class FileSources:
    """Policy file + (signed federation directory | folder of public keys)."""

    def __init__(self, policy: Path, *, federation: Path | None = None, authority_pub: Path | None = None,
                 keys: Path | None = None, state_dir: Path | None = None) -> None:
        if federation is None and keys is None:
            raise BusError("the router needs --federation FILE --authority-pub PUB (or --keys DIR for tests)")
        if federation is not None and authority_pub is None:
            raise BusError("--federation needs --authority-pub")
        self.policy_path, self.federation, self.authority_pub, self.keys = policy, federation, authority_pub, keys
        self.state_dir = state_dir
        self._watched = [p for p in (policy, federation) if p is not None]
        self._last = _digest(self._watched)

    def load(self) -> tuple[Policy, KeyResolver]:
        from bus.adapters.policy_file import load_policy

        policy = load_policy(self.policy_path)
        resolver: KeyResolver
        if self.federation is not None:
            from bus.adapters.federation_file import load_verified_directory

            assert self.authority_pub is not None
            state = self.state_dir / "federation.state" if self.state_dir else None
            resolver = load_verified_directory(self.federation, self.authority_pub, state)
        else:
            from bus.adapters.keystore import load_keyring

            assert self.keys is not None
            resolver = load_keyring(self.keys)
        self._last = _digest(self._watched)
        return policy, resolver

    def changed(self) -> bool:
        return _digest(self._watched) != self._last
