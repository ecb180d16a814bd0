"""The publisher's shortcuts give the same bytes as the general paths they stand in for:
`format_time` without strftime, `sign_built` without re-counting the headers it was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bus.core.envelope import build_headers, format_time
from bus.core.keys import SigningKey
from bus.core.signing import sign_built, sign_record, verify_record

SIGNER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
zones = st.one_of(st.just(UTC), offsets)
# Aware datetimes whose UTC instant stays inside datetime's range.
aware = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zones,
)


@given(when=aware)
def test_format_time_is_strftimes_spelling(when: datetime) -> None:
    utc = when.astimezone(UTC)
    assert format_time(when) == f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


@given(
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.binary(max_size=300),
    message_id=st.uuids(),
    when=aware,
    alert_type=st.sampled_from(["suspicious-container", "corruption-indicator", "operation-notice"]),
)
def test_sign_built_signs_what_sign_record_signs(
    key: bytes | None, value: bytes, message_id: UUID, when: datetime, alert_type: str
) -> None:
    headers = build_headers(message_id=message_id, producer=SIGNER.member, alert_type=alert_type,
                            time=when, key_id=SIGNER.key_id)
    signed = sign_built(SIGNER, key, headers, value)
    assert signed == sign_record(SIGNER, key, headers, value)
    verify_record(SIGNER.public, key, signed, value)
