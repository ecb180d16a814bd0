"""Placement must agree with every Kafka client, or the router would call good records misplaced."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bus.core.placement import murmur2, partition_for

# Values printed by Java's org.apache.kafka.common.utils.Utils.murmur2 (Kafka's own unit test vectors).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_the_java_client() -> None:
    for data, expected in JAVA_VECTORS.items():
        assert murmur2(data) == expected, data


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=1000))
def test_partition_is_in_range_and_stable(key: bytes, partitions: int) -> None:
    p = partition_for(key, partitions)
    assert 0 <= p < partitions
    assert partition_for(key, partitions) == p


def test_placement_is_murmur2_modulo_partitions() -> None:
    # toPositive(murmur2("foobar")) % 6, worked by hand: -790332482 & 0x7fffffff = 1357151166
    assert partition_for(b"foobar", 6) == 1357151166 % 6


def _murmur2_reference(data: bytes) -> int:
    """Kafka's Utils.murmur2 transcribed word by word, without the cache or the bulk unpack."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[full:]
    if tail:
        for shift, byte in reversed(list(enumerate(tail))):
            h ^= byte << (8 * shift)
        h = (h * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@given(st.binary(max_size=600))
def test_murmur2_agrees_with_the_reference_twice(key: bytes) -> None:
    """The memoised hash gives the reference value on the first call and on a cached one."""
    assert murmur2(key) == _murmur2_reference(key)
    assert murmur2(bytearray(key)) == _murmur2_reference(key)
