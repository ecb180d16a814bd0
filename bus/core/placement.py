"""Where a keyed record belongs: Kafka's default partitioner, as a pure function.

The router rejects a record found on any other partition (`misplaced`): a signed
alert replayed to a second partition would otherwise escape a per-partition
replay window. Java clients, kafka-python and confluent-kafka's
`murmur2_random` partitioner all place a keyed record at
`toPositive(murmur2(key)) % partitions`; this is that computation.
"""

from __future__ import annotations

import functools
import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


_CACHED_KEY_BYTES = 256
"""Longer keys (a hostile record's key may be a megabyte) are hashed each time, never kept."""


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's `Utils.murmur2` computes it, as a signed 32-bit int."""
    data = bytes(data)
    return _murmur2_cached(data) if len(data) <= _CACHED_KEY_BYTES else _murmur2(data)


@functools.lru_cache(maxsize=4096)
def _murmur2_cached(data: bytes) -> int:
    """Memoised: one record's key is hashed for the placement check and again by every
    in-process producer that writes under it (a feed copy, a changelog entry), and a
    partner's feed key or a container number repeats across records."""
    return _murmur2(data)


def _murmur2(data: bytes) -> int:
    length = len(data)
    h = (_SEED ^ length) & _MASK
    full = length - length % 4
    for k in struct.unpack_from(f"<{full // 4}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a record with this key goes to on a topic with `partitions` partitions."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
