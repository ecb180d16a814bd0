"""What an engine can send, and a record's size: the port's checks before every produce."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from bus.adapters.kafka import Capabilities, Headers, Record

_names = st.one_of(st.binary(max_size=12), st.sampled_from([b"ce_id", b"a\x00b", b"\xff\xfe"]))
_headers = st.lists(st.tuples(_names, st.one_of(st.none(), st.binary(max_size=40))), max_size=6).map(tuple)
_capabilities = st.builds(Capabilities, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                          st.integers(min_value=0, max_value=200))


def _utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_HEADER_RULES: list[tuple[str, Callable[[bytes, bytes | None], bool], str]] = [
    ("null_header_values", lambda name, value: value is None, "a null header value"),
    ("nul_in_header_names", lambda name, value: b"\x00" in name, "a header name holding a NUL byte"),
    ("non_utf8_header_names", lambda name, value: not _utf8(name), "a header name that is not UTF-8"),
]
"""The documented rule as a table: (capability, what breaks it, the message), checked in this order
for each header in turn."""


def _reference(caps: Capabilities, key: bytes | None, value: bytes | None, headers: Headers) -> str | None:
    """The rule as documented: the first problem in header order, then the size."""
    if key is None and value is None and not caps.keyless_valueless_records:
        return "a record with neither key nor value"
    problems = (message for name, header_value in headers for capability, breaks, message in _HEADER_RULES
                if not getattr(caps, capability) and breaks(name, header_value))
    first = next(problems, None)
    if first is not None:
        return first
    size = len(key or b"") + len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
    return f"{size} bytes, over the producer's limit of {caps.max_record_bytes}" if size > caps.max_record_bytes \
        else None


@given(_capabilities, st.one_of(st.none(), st.binary(max_size=30)), st.one_of(st.none(), st.binary(max_size=60)),
       _headers)
def test_cannot_send_names_the_first_problem(caps: Capabilities, key: bytes | None, value: bytes | None,
                                             headers: Headers) -> None:
    assert caps.cannot_send(key, value, headers) == _reference(caps, key, value, headers)


@given(st.one_of(st.none(), st.binary(max_size=30)), st.one_of(st.none(), st.binary(max_size=60)), _headers)
def test_record_size_counts_key_value_and_headers(key: bytes | None, value: bytes | None, headers: Headers) -> None:
    record = Record("t", 0, 0, 0, key, value, headers)
    assert record.size == len(key or b"") + len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
