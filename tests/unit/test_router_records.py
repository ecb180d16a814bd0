"""What the router writes besides forwarded alerts: bounded copies, dead letters, receipts, acks,
and the routers' section of the federation directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.core import deadletter
from bus.core.bounded import COPY_LIMIT, bounded, capped
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.receipts import (
    ACK_TYPE,
    RECEIPT_TYPE,
    AckStatus,
    sign_ack,
    sign_router_record,
    verify_ack,
    verify_router_record,
)
from bus.core.trust import (
    FederationDirectory,
    FederationRouter,
    Member,
    MemberKey,
    add_key,
    add_router,
    revoke_key,
)
from bus.errors import DirectoryError, RejectReason, VerificationError

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
ROUTER = SigningKey.generate("EPA-ROUTER-1")
NL = SigningKey.generate("NL-CUSTOMS")


def directory() -> FederationDirectory:
    return FederationDirectory(
        federation_id="EPA", name="t", version=1, issued_at=NOW,
        members=(Member(id="NL-CUSTOMS", name="nl", country="NL", kind="customs",  # type: ignore[arg-type]
                        keys=(MemberKey.for_public_key(NL.public, NOW - DAY, NOW + 9 * DAY),)),),
        routers=(FederationRouter(id="EPA-ROUTER-1", name="r",
                                  keys=(MemberKey.for_public_key(ROUTER.public, NOW - DAY, NOW + 9 * DAY),)),),
    )


# -- bounds ---------------------------------------------------------------------------------------


@given(st.binary(max_size=400) | st.text(max_size=300))
def test_bounded_copies_short_printable_values_and_describes_the_rest(value):
    out = bounded(value)
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if isinstance(out, str):
        assert out.encode() == data and len(data) <= COPY_LIMIT and data.isascii()
    else:
        assert out is not None and out["len"] == len(data) and len(out["sha256"]) == 16
    assert len(json.dumps(out)) < 200


def test_capped_keeps_at_most_the_limit():
    assert capped("x" * 10_000, 512).endswith("(10000 characters)") and len(capped("x" * 10_000, 512)) == 512
    assert capped("short") == "short"


# -- dead letters ----------------------------------------------------------------------------------


def test_the_copy_keeps_every_header_but_the_reserved_ones_and_puts_the_routers_last():
    incoming = [(b"ce_id", b"1"), (b"bus_reject_reason", b"none"), (b"\xff\xfe", None), (b"bus_source_topic", b"x"),
                (b"bus_dead_letter_form", b"copy"), (b"ce_id", b"2")]
    headers = deadletter.copy_headers(incoming, "bad-schema", "why", "alerts.x", 3, 42)
    assert headers[:3] == [(b"ce_id", b"1"), (b"\xff\xfe", None), (b"ce_id", b"2")]
    assert dict(headers[3:]) == {b"bus_reject_reason": b"bad-schema", b"bus_reject_detail": b"why",
                                 b"bus_source_topic": b"alerts.x", b"bus_source_partition": b"3",
                                 b"bus_source_offset": b"42"}


def test_the_bounded_form_lets_the_original_be_found_and_checked():
    headers = [(b"a", b"1"), (b"b", None)] * 50
    value = json.loads(deadletter.bounded_value(reason="oversized", why="too big", topic="alerts.x", partition=1,
                                                offset=7, key=None, value=b"v" * 10, headers=headers))
    assert value["source"] == {"topic": "alerts.x", "partition": 1, "offset": 7}
    assert value["key"] is None and value["value"]["len"] == 10
    assert value["header_count"] == 100 and len(value["headers"]) == deadletter.HEADERS_LISTED
    assert value["headers"][1] == {"name": "b", "len": None, "sha256": None}
    assert value["headers_sha256"] == deadletter.headers_digest(headers)
    detail = deadletter.bounded_headers("oversized", "é" * 2000, "t", 0, 0)
    assert dict(detail)[deadletter.FORM] == b"bounded" and len(dict(detail)[deadletter.REJECT_DETAIL]) < 4000


# -- receipts and acks -----------------------------------------------------------------------------


def test_a_receipt_verifies_with_the_listed_router_key_and_nothing_else():
    value, headers = sign_router_record(ROUTER, "EPA-ROUTER-1", RECEIPT_TYPE, {"message_id": "m", "outcome": "routed"},
                                        NOW, key=b"m")
    verified = verify_router_record(b"m", value, headers, directory())
    assert verified.value["outcome"] == "routed" and verified.router_id == "EPA-ROUTER-1"
    with pytest.raises(VerificationError) as bad:
        verify_router_record(b"m", value.replace(b"routed", b"rejectd"), headers, directory())
    assert bad.value.reason is RejectReason.BAD_SIGNATURE
    impostor_value, impostor = sign_router_record(SigningKey.generate("EPA-ROUTER-1"), "EPA-ROUTER-1", RECEIPT_TYPE,
                                                  {}, NOW)
    with pytest.raises(VerificationError) as unknown:
        verify_router_record(None, impostor_value, impostor, directory())
    assert unknown.value.reason is RejectReason.UNKNOWN_KEY
    member_value, member_headers = sign_router_record(NL, "NL-CUSTOMS", RECEIPT_TYPE, {}, NOW)
    with pytest.raises(VerificationError):  # a member key never passes for a router's
        verify_router_record(None, member_value, member_headers, directory())
    late_value, late = sign_router_record(ROUTER, "EPA-ROUTER-1", RECEIPT_TYPE, {}, NOW + 10 * DAY)
    with pytest.raises(VerificationError) as expired:
        verify_router_record(None, late_value, late, directory())
    assert expired.value.reason is RejectReason.KEY_EXPIRED


def test_an_ack_verifies_like_an_alert_and_a_tampered_one_does_not():
    value, headers = sign_ack(NL, b"PSN-1", "01912345-6789-7abc-8def-0123456789ab", AckStatus.ACTIONED, "done", NOW)
    ack = verify_ack(b"PSN-1", value, headers, directory())
    assert (ack.member, ack.status, ack.note) == ("NL-CUSTOMS", AckStatus.ACTIONED, "done")
    with pytest.raises(VerificationError) as moved:
        verify_ack(b"PSN-2", value, headers, directory())  # the key is signed: it cannot be moved
    assert moved.value.reason is RejectReason.BAD_SIGNATURE and moved.value.producer is None
    revoked = revoke_key(directory(), "NL-CUSTOMS", NL.key_id, at=NOW - DAY / 2, reason="lost")
    with pytest.raises(VerificationError) as late:
        verify_ack(b"PSN-1", value, headers, revoked)
    assert late.value.reason is RejectReason.KEY_REVOKED and late.value.producer == "NL-CUSTOMS"
    ring = Keyring()
    ring.add("NL-CUSTOMS", NL.public)
    assert verify_ack(b"PSN-1", value, headers, ring).status is AckStatus.ACTIONED
    assert dict(headers)["ce_type"] == ACK_TYPE.encode()


# -- routers in the directory ------------------------------------------------------------------------


def test_routers_are_signed_content_but_absent_routers_do_not_change_old_signatures():
    without = directory().model_copy(update={"routers": ()})
    assert b"routers" not in without.canonical_bytes()
    assert b'"routers"' in directory().canonical_bytes()


def test_router_keys_rotate_and_revoke_and_never_pass_as_member_keys():
    d = directory()
    new = SigningKey.generate("EPA-ROUTER-1")
    d = add_key(d, "EPA-ROUTER-1", MemberKey.for_public_key(new.public, NOW, NOW + 9 * DAY))
    assert d.router_key(new.key_id, "EPA-ROUTER-1", NOW + DAY).key_id == new.key_id
    d = revoke_key(d, "EPA-ROUTER-1", ROUTER.key_id, at=NOW, reason="rotated")
    with pytest.raises(VerificationError):
        d.router_key(ROUTER.key_id, "EPA-ROUTER-1", NOW + DAY)
    with pytest.raises(VerificationError) as as_member:
        d.lookup(new.key_id, "EPA-ROUTER-1")
    assert as_member.value.reason is RejectReason.UNKNOWN_KEY
    with pytest.raises(DirectoryError, match="already"):
        add_router(d, FederationRouter(id="EPA-ROUTER-1", name="again"))
    with pytest.raises(DirectoryError, match="invalid"):
        add_router(d, FederationRouter(id="NL-CUSTOMS", name="clash"))
