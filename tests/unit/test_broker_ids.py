"""Cluster ids handed to Kafka's storage tool."""

import base64

from bus.adapters.broker import base64_uuid


def test_cluster_ids_are_16_byte_base64url_and_never_look_like_an_option():
    ids = [base64_uuid() for _ in range(5000)]  # about 78 would begin with "-" if not redrawn
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
