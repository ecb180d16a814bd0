"""Merkle tree hashes and inclusion proofs, as RFC 9162 (Certificate Transparency 2.0) defines them.

The router's signed audit checkpoints commit to the entries of a segment of a
chain with one Merkle tree hash, so a member can check that the entries about its
own alerts are in a checkpointed segment from a logarithmic proof, without reading
anybody else's entries.

Definitions (RFC 9162, section 2.1), with SHA-256 and leaves `d[0:n]`:

    MTH({})      = SHA-256()
    MTH({d0})    = SHA-256(0x00 || d0)
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of 2 < n

Here each leaf is the 32 raw bytes of an audit entry's hash. Proofs are built as in
section 2.1.3.1 and verified with the algorithm of section 2.1.3.2.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaves (each leaf given as its data, not yet hashed)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(d) for d in leaves]
    return _root_of_hashes(level)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` (RFC 9162, 2.1.3.1), leaf side first."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(index, [leaf_hash(d) for d in leaves])


def _path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, hashes[:k]), _root_of_hashes(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _root_of_hashes(hashes[:k])]


def proofs(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The inclusion proof of every leaf, sharing the subtree hashes (n log n, not n^2)."""
    hashes = [leaf_hash(d) for d in leaves]
    out: list[list[bytes]] = [[] for _ in hashes]
    _fill(hashes, list(range(len(hashes))), out)
    return out


def _fill(hashes: Sequence[bytes], indexes: list[int], out: list[list[bytes]]) -> bytes:
    """Append to each leaf's path the sibling hashes within this subtree; return its root."""
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    left = _fill(hashes[:k], indexes[:k], out)
    right = _fill(hashes[k:], indexes[k:], out)
    for i in indexes[:k]:
        out[i].append(right)
    for i in indexes[k:]:
        out[i].append(left)
    return node_hash(left, right)


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes) -> bool:
    """Whether `path` proves leaf data `leaf` is leaf `index` of the tree of `size` with this root.

    RFC 9162, 2.1.3.2: walk the path from the leaf up, using the bits of the index
    and of `size - 1` to know on which side each sibling lies and when a level has no
    sibling (the right edge of an unbalanced tree).
    """
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in path):
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root
