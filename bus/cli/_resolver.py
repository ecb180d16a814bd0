"""Pick the key resolver a reading command verifies against."""

from __future__ import annotations

from pathlib import Path

from bus.core.keyring import KeyResolver
from bus.errors import BusError


def resolver_from(keys: Path | None, federation: Path | None, authority_pub: Path | None) -> KeyResolver:
    """The signed federation directory if given, else a plain folder of public keys."""
    if federation is not None:
        if authority_pub is None:
            raise BusError("--federation needs --authority-pub (the federation authority's public key)")
        from bus.adapters.federation_file import load_verified_directory

        return load_verified_directory(federation, authority_pub)
    if keys is not None:
        from bus.adapters.keystore import load_keyring

        return load_keyring(keys)
    raise BusError("say whose keys to trust: --federation FILE --authority-pub PUB, or --keys DIR")
