"""The documented check order (docs/wire-format.md, section 6) and who may be told the verdict.

Order: envelope -> bus_sig shape -> key lookup -> ownership -> signature -> format
window -> key status at ce_time (not yet valid, revoked, expired) -> type right ->
value -> body agrees. Errors after the signature carry the producer (receipts).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.adapters.schema_files import default_schemas
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert, parse_alert
from bus.core.policy import parse_policy
from bus.core.sealing import SealedRecord, seal, unseal
from bus.core.signing import SIGNATURE_HEADER, V1_0_ACCEPTED_UNTIL, WireVersion, signing_input
from bus.core.trust import FederationDirectory, FreshnessPolicy, Member, MemberKey
from bus.errors import RejectReason, VerificationError
from bus.services.routing import route
from tests.helpers import CODES, example

SCHEMAS = default_schemas()
SIGNER = SigningKey("NL-CUSTOMS", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = SigningKey("BE-POLICE", Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34))))
START = datetime(2026, 1, 1, tzinfo=UTC)
REVOKED_AT = datetime(2026, 6, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
L = 2**252 + 27742317777372353535851937790883648493


def member_key(signer: SigningKey, **extra: Any) -> MemberKey:
    return MemberKey(key_id=signer.key_id, public_key=signer.public.to_raw_b64(),
                     not_before=START, not_after=END, **extra)


DIRECTORY = FederationDirectory(
    federation_id="EPA", name="test", version=1, issued_at=START,
    members=(
        Member(id="NL-CUSTOMS", name="Douane", country="NL", kind="customs",
               may_publish=("suspicious-container",),  # not corruption-indicator
               keys=(member_key(SIGNER, revoked_at=REVOKED_AT, revocation_reason="laptop stolen"),)),
        Member(id="BE-POLICE", name="Police", country="BE", kind="police",
               may_publish=("suspicious-container",), keys=(member_key(OTHER),)),
    ),
)


def alert(created: datetime, alert_type: str = "suspicious-container", producer: str = "NL-CUSTOMS") -> BaseAlert:
    if alert_type != "suspicious-container":
        return example(alert_type, producer, created=created.isoformat())
    body: dict[str, Any] = {"container_number": "MSCU1234566"}
    data = {"header": {"alert_type": alert_type, "tlp": "AMBER", "source_reliability": "B",
                       "information_assessment": "2", "summary": "test", "created": created.isoformat()},
            **body}
    return parse_alert(data, producer=producer, empact_codes=CODES)


def reason(record: SealedRecord, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        unseal(record.key, record.value, record.headers, DIRECTORY, SCHEMAS, CODES, **kwargs)
    return info.value


def with_sig(record: SealedRecord, sig: bytes) -> SealedRecord:
    headers = [(n, v) for n, v in record.headers if n != SIGNATURE_HEADER] + [(SIGNATURE_HEADER, sig)]
    return SealedRecord(record.topic, record.key, record.value, headers)


def as_v1_0(record: SealedRecord, signer: SigningKey = SIGNER) -> SealedRecord:
    unsigned = [(n, v) for n, v in record.headers if n != SIGNATURE_HEADER]
    return with_sig(record, signer.sign(signing_input(record.key, unsigned, record.value, WireVersion.V1_0)))


GOOD = seal(alert(START + timedelta(days=10)), SIGNER, SCHEMAS)
LATE = seal(alert(REVOKED_AT + timedelta(days=1)), SIGNER, SCHEMAS)  # key revoked by then


def test_a_good_record_verifies() -> None:
    verified = unseal(GOOD.key, GOOD.value, GOOD.headers, DIRECTORY, SCHEMAS, CODES)
    assert verified.producer == "NL-CUSTOMS" and verified.wire_version is WireVersion.V1_1


def test_the_signature_is_checked_before_the_key_status() -> None:
    """A revoked key's record with a broken signature is bad-signature: nobody is told about revocation."""
    tampered = SealedRecord(LATE.topic, LATE.key, LATE.value + b"\x00", LATE.headers)
    error = reason(tampered)
    assert error.reason is RejectReason.BAD_SIGNATURE and error.producer is None
    error = reason(LATE)
    assert error.reason is RejectReason.KEY_REVOKED and error.producer == "NL-CUSTOMS"
    assert "laptop stolen" in error.detail


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (START - timedelta(milliseconds=1), RejectReason.KEY_NOT_YET_VALID),
        (START, None),  # not_before is inclusive
        (REVOKED_AT - timedelta(milliseconds=1), None),
        (REVOKED_AT, RejectReason.KEY_REVOKED),  # revoked_at is inclusive
    ],
)
def test_validity_bounds(created: datetime, expected: RejectReason | None) -> None:
    record = seal(alert(created), SIGNER, SCHEMAS)
    if expected is None:
        unseal(record.key, record.value, record.headers, DIRECTORY, SCHEMAS, CODES)
    else:
        assert reason(record).reason is expected


def test_not_after_is_exclusive_and_revocation_beats_expiry() -> None:
    fresh = DIRECTORY.model_copy(update={"members": (DIRECTORY.members[1],)})
    at_end = seal(alert(END, producer="BE-POLICE"), OTHER, SCHEMAS)
    just_before = seal(alert(END - timedelta(milliseconds=1), producer="BE-POLICE"), OTHER, SCHEMAS)
    unseal(just_before.key, just_before.value, just_before.headers, fresh, SCHEMAS, CODES)
    with pytest.raises(VerificationError) as info:
        unseal(at_end.key, at_end.value, at_end.headers, fresh, SCHEMAS, CODES)
    assert info.value.reason is RejectReason.KEY_EXPIRED
    after_both = seal(alert(END + timedelta(days=1)), SIGNER, SCHEMAS)
    assert reason(after_both).reason is RejectReason.KEY_REVOKED


def test_key_status_comes_before_the_type_right() -> None:
    not_allowed = seal(alert(START + timedelta(days=1), "corruption-indicator"), SIGNER, SCHEMAS)
    error = reason(not_allowed)
    assert error.reason is RejectReason.TYPE_NOT_ALLOWED and error.producer == "NL-CUSTOMS"
    both = seal(alert(REVOKED_AT + timedelta(days=1), "corruption-indicator"), SIGNER, SCHEMAS)
    assert reason(both).reason is RejectReason.KEY_REVOKED


def test_lookup_failures_name_no_producer() -> None:
    record = seal(alert(START + timedelta(days=1), producer="BE-POLICE"), OTHER, SCHEMAS)
    stranger = SigningKey("BE-POLICE", Ed25519PrivateKey.generate())
    unknown = reason(seal(alert(START + timedelta(days=1), producer="BE-POLICE"), stranger, SCHEMAS))
    assert unknown.reason is RejectReason.UNKNOWN_KEY and unknown.producer is None
    claims_other = [(n, b"urn:epa:member:NL-CUSTOMS" if n == "ce_source" else v) for n, v in record.headers]
    error = reason(SealedRecord(record.topic, record.key, record.value, claims_other))
    assert error.reason is RejectReason.KEY_NOT_OWNED and error.producer is None


def test_errors_after_the_signature_carry_the_producer() -> None:
    value = SCHEMAS.encode("suspicious-container", {**alert(START).to_avro(), "container_number": "MSCU1234567"})
    from bus.core.envelope import build_headers
    from bus.core.signing import sign_record

    a = alert(START + timedelta(days=2))
    headers = sign_record(SIGNER, b"MSCU1234567", build_headers(
        message_id=a.header.message_id, producer="NL-CUSTOMS", alert_type="suspicious-container",
        time=a.header.created, key_id=SIGNER.key_id), value)
    error = reason(SealedRecord("alerts.suspicious-container", b"MSCU1234567", value, headers))
    assert error.reason is RejectReason.BAD_SCHEMA and "container_number" in error.detail  # bad check digit
    assert error.producer == "NL-CUSTOMS"


def test_a_trailing_newline_in_the_source_is_bad_schema_not_a_key_question() -> None:
    headers = [(n, v + b"\n" if n == "ce_source" else v) for n, v in GOOD.headers]
    assert reason(SealedRecord(GOOD.topic, GOOD.key, GOOD.value, headers)).reason is RejectReason.BAD_SCHEMA


def test_null_value_and_null_covered_header_are_bad_schema() -> None:
    with pytest.raises(VerificationError) as info:
        unseal(GOOD.key, None, GOOD.headers, DIRECTORY, SCHEMAS, CODES)
    assert info.value.reason is RejectReason.BAD_SCHEMA and "null" in info.value.detail
    for name in ("ce_id", "bus_keyid", "content-type"):
        headers = [(n, None if n == name else v) for n, v in GOOD.headers]
        with pytest.raises(VerificationError) as info:
            unseal(GOOD.key, GOOD.value, headers, DIRECTORY, SCHEMAS, CODES)
        assert info.value.reason is RejectReason.BAD_SCHEMA


def test_a_non_canonical_s_is_bad_signature() -> None:
    raw = base64.urlsafe_b64decode(GOOD.headers[-1][1] + b"==")
    s = int.from_bytes(raw[32:], "little") + L
    forged = base64.urlsafe_b64encode(raw[:32] + s.to_bytes(32, "little")).rstrip(b"=")
    assert reason(with_sig(GOOD, forged)).reason is RejectReason.BAD_SIGNATURE


# ---- the 1.0 transition window ----


def test_a_1_0_record_is_accepted_during_the_window() -> None:
    old = as_v1_0(GOOD)
    verified = unseal(old.key, old.value, old.headers, DIRECTORY, SCHEMAS, CODES)
    assert verified.wire_version is WireVersion.V1_0 and verified.alert.header.producer == "NL-CUSTOMS"


def test_a_1_0_record_is_rejected_after_the_window() -> None:
    old = as_v1_0(GOOD)
    error = reason(old, accept_v1_0_until=GOOD_CREATED)
    assert error.reason is RejectReason.UNSUPPORTED_FORMAT and error.producer == "NL-CUSTOMS"
    assert "sign with format 1.1" in error.detail
    # the same record in 1.1 is fine whatever the window says
    unseal(GOOD.key, GOOD.value, GOOD.headers, DIRECTORY, SCHEMAS, CODES, accept_v1_0_until=GOOD_CREATED)


def test_the_default_window_follows_the_records_signed_time() -> None:
    tomorrow_key = SigningKey("BE-POLICE", OTHER.key)
    late_dir = DIRECTORY.model_copy(update={"members": (DIRECTORY.members[1].model_copy(update={"keys": (
        MemberKey(key_id=OTHER.key_id, public_key=OTHER.public.to_raw_b64(), not_before=START,
                  not_after=V1_0_ACCEPTED_UNTIL + timedelta(days=30)),)}),)})
    for created, ok in ((V1_0_ACCEPTED_UNTIL - timedelta(milliseconds=1), True), (V1_0_ACCEPTED_UNTIL, False)):
        old = as_v1_0(seal(alert(created, producer="BE-POLICE"), tomorrow_key, SCHEMAS), tomorrow_key)
        if ok:
            unseal(old.key, old.value, old.headers, late_dir, SCHEMAS, CODES)
        else:
            with pytest.raises(VerificationError) as info:
                unseal(old.key, old.value, old.headers, late_dir, SCHEMAS, CODES)
            assert info.value.reason is RejectReason.UNSUPPORTED_FORMAT


def test_the_router_passes_its_window_down() -> None:
    old = as_v1_0(GOOD)
    common: dict[str, Any] = dict(
        resolver=DIRECTORY, policy=parse_policy({"version": "t", "partners": [{"id": "EUROPOL", "kind": "eu-agency"}],
                                                 "rules": []}),
        feed_topics={}, freshness=FreshnessPolicy(max_age=timedelta(days=3650)), seen=lambda _: False,
        now=GOOD_CREATED + timedelta(minutes=1), schemas=SCHEMAS, empact_codes=CODES,
    )
    assert route(old.key, old.value, old.headers, **common).accepted
    rejected = route(old.key, old.value, old.headers, accept_v1_0_until=GOOD_CREATED, **common)
    assert not rejected.accepted and rejected.reason is RejectReason.UNSUPPORTED_FORMAT


GOOD_CREATED = START + timedelta(days=10)


def test_the_router_result_names_the_producer_only_once_authenticated() -> None:
    common: dict[str, Any] = dict(
        resolver=DIRECTORY, policy=parse_policy({"version": "t", "partners": [{"id": "EUROPOL", "kind": "eu-agency"}],
                                                 "rules": []}),
        feed_topics={}, freshness=FreshnessPolicy(max_age=timedelta(days=3650)), seen=lambda _: False,
        now=REVOKED_AT + timedelta(days=2), schemas=SCHEMAS, empact_codes=CODES,
    )
    revoked = route(LATE.key, LATE.value, LATE.headers, **common)
    assert revoked.reason is RejectReason.KEY_REVOKED and revoked.authenticated_producer == "NL-CUSTOMS"
    forged = route(LATE.key, LATE.value + b"\x00", LATE.headers, **common)
    assert forged.reason is RejectReason.BAD_SIGNATURE and forged.authenticated_producer is None
    assert forged.producer == "NL-CUSTOMS"  # what the envelope claims, for the audit trail only
    replayed = route(GOOD.key, GOOD.value, GOOD.headers, **{**common, "seen": lambda _: True})
    assert replayed.reason is RejectReason.REPLAY and replayed.authenticated_producer == "NL-CUSTOMS"
