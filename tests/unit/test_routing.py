"""The router's per-record decision, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from bus.core.keys import SigningKey
from bus.core.policy import parse_policy
from bus.core.sealing import seal
from bus.core.trust import FreshnessPolicy
from bus.services.routing import route
from tests.helpers import CODES, SCHEMAS, example, keyring_for

POLICY = parse_policy({"version": "t", "partners": [{"id": "EUROPOL", "kind": "eu-agency"}],
                       "rules": [{"id": "all", "match": {}, "deliver_to": ["EUROPOL"]}]})
FEEDS = {"EUROPOL": "feed.europol"}


def decide(record, resolver, seen=lambda _: False):  # type: ignore[no-untyped-def]
    return route(record.key, record.value, record.headers, resolver=resolver, policy=POLICY, feed_topics=FEEDS,
                 freshness=FreshnessPolicy(), seen=seen, now=datetime.now(UTC), schemas=SCHEMAS,
                 empact_codes=CODES)


def test_a_verified_fresh_new_alert_goes_where_the_policy_says():
    signer = SigningKey.generate("NL-CUSTOMS")
    result = decide(seal(example("suspicious-container"), signer, SCHEMAS), keyring_for(signer))
    assert result.accepted and result.feeds == ("feed.europol",)
    assert result.audit_entry()["decisions"]["EUROPOL"]["rule"] == "all"


def test_a_seen_message_id_is_a_replay():
    signer = SigningKey.generate("NL-CUSTOMS")
    result = decide(seal(example("suspicious-container"), signer, SCHEMAS), keyring_for(signer), seen=lambda _: True)
    assert not result.accepted and result.reason == "replay"


def test_a_record_that_breaks_the_pipeline_is_dead_lettered_not_fatal():
    """A poison record (here: a resolver that blows up) becomes a reject, never a crash loop."""

    class Exploding:
        def lookup(self, *args):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    signer = SigningKey.generate("NL-CUSTOMS")
    result = decide(seal(example("suspicious-container"), signer, SCHEMAS), Exploding())
    assert not result.accepted and result.crashed
    assert result.reason == "internal-error" and "boom" in result.detail
