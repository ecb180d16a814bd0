"""Error mapping of both engines, for conditions a real broker cannot easily be made to produce."""

from __future__ import annotations

from pathlib import Path

import kafka.errors as KE
import pytest
from confluent_kafka import KafkaError as CE
from pydantic import SecretStr

from bus.adapters.kafka._common import check_settings
from bus.adapters.kafka._confluent_errors import Context, from_error, watched
from bus.adapters.kafka._kafka_python_errors import Context as KContext
from bus.adapters.kafka._kafka_python_errors import from_kafka_python
from bus.config import KafkaSettings
from bus.errors import (
    AuthenticationFailed,
    ConfigError,
    Fenced,
    KafkaOperationFailed,
    NotAuthorized,
    OutcomeUnknown,
    ProtocolMismatch,
    RecordTooLarge,
    TlsFailed,
)

SASL = KafkaSettings(bootstrap="h:1", security_protocol="SASL_PLAINTEXT", sasl_username="nl-customs",
                     sasl_password=SecretStr("pw"))


@pytest.mark.parametrize(("code", "context", "expected", "resource"), [
    (CE.TOPIC_AUTHORIZATION_FAILED, Context("reading", topic="audit"), NotAuthorized, "topic audit"),
    (CE.GROUP_AUTHORIZATION_FAILED, Context("committing", group="bus-router"), NotAuthorized, "group bus-router"),
    (CE.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, Context("init", transactional_id="bus-router-1"),
     NotAuthorized, "transactional id bus-router-1"),
    (CE.CLUSTER_AUTHORIZATION_FAILED, Context("init"), NotAuthorized, "cluster"),
])
def test_confluent_denials_name_the_resource(code: int, context: Context, expected: type, resource: str) -> None:
    error = from_error(CE(code, "denied"), context)
    assert isinstance(error, expected)
    assert isinstance(error, NotAuthorized) and error.resource == resource
    assert resource in str(error)


@pytest.mark.parametrize(("err", "expected"), [
    (CE(CE._FENCED, "fenced", fatal=True), Fenced),
    (CE(CE.PRODUCER_FENCED, "fenced"), Fenced),
    (CE(CE.INVALID_PRODUCER_EPOCH, "old epoch"), Fenced),
    (CE(CE._TIMED_OUT, "timed out", retriable=True), OutcomeUnknown),
    (CE(CE.COORDINATOR_LOAD_IN_PROGRESS, "loading", retriable=True), OutcomeUnknown),
    (CE(CE.MSG_SIZE_TOO_LARGE, "too large"), RecordTooLarge),
    (CE(CE.INVALID_TXN_STATE, "must abort", txn_requires_abort=True), KafkaOperationFailed),
])
def test_confluent_transaction_errors(err: CE, expected: type) -> None:
    assert type(from_error(err, Context("committing", transactional_id="t"))) is expected


def test_confluent_error_cb_reports_that_decide() -> None:
    wrong = watched(CE(CE._AUTHENTICATION, "h:1/bootstrap: SASL authentication error: Authentication failed "
                                            "during authentication due to invalid credentials"), SASL)
    assert isinstance(wrong, AuthenticationFailed) and "'nl-customs'" in str(wrong)
    no_sasl = watched(CE(CE._AUTHENTICATION, "h:1/bootstrap: SASL SCRAM-SHA-512 mechanism handshake failed: "
                                              "Broker: Request not valid in current SASL state"), SASL)
    assert isinstance(no_sasl, ProtocolMismatch)
    assert isinstance(watched(CE(CE._SSL, "certificate verify failed"), SASL), TlsFailed)
    assert isinstance(watched(CE(CE._TRANSPORT, "SSL handshake failed: connecting to a PLAINTEXT broker "
                                                "listener?"), SASL), TlsFailed)
    assert watched(CE(CE._TRANSPORT, "Connection refused"), SASL) is None  # may be a restart
    assert watched(CE(CE._ALL_BROKERS_DOWN, "1/1 brokers are down"), SASL) is None


@pytest.mark.parametrize(("exc", "expected"), [
    (KE.TopicAuthorizationFailedError("denied: {'audit'}"), NotAuthorized),
    (KE.ProducerFencedError(), Fenced),
    (KE.InvalidProducerEpochError(), Fenced),
    (KE.MessageSizeTooLargeError(), RecordTooLarge),
    (KE.KafkaTimeoutError(), OutcomeUnknown),
    (KE.SaslAuthenticationFailedError(), AuthenticationFailed),
    (KE.IllegalSaslStateError(), ProtocolMismatch),
    (KE.CorruptRecordError(), KafkaOperationFailed),
])
def test_kafka_python_errors(exc: Exception, expected: type) -> None:
    assert type(from_kafka_python(exc, KContext("doing"))) is expected


def test_kafka_python_denial_names_the_topic_from_the_message_when_the_context_does_not() -> None:
    error = from_kafka_python(KE.TopicAuthorizationFailedError("denied: {'audit'}"), KContext("reading"))
    assert isinstance(error, NotAuthorized) and error.resource == "topic audit"


def test_settings_that_cannot_work_are_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(ProtocolMismatch, match="SASL_PLAINTEXT or SASL_SSL"):
        check_settings(KafkaSettings(sasl_username="u", sasl_password=SecretStr("p")))
    with pytest.raises(ConfigError, match="needs a SASL username and password"):
        check_settings(KafkaSettings(security_protocol="SASL_SSL"))
    with pytest.raises(ProtocolMismatch, match="does not use TLS"):
        check_settings(KafkaSettings(ssl_cafile=tmp_path / "ca.pem"))
    with pytest.raises(ConfigError, match="does not exist"):
        check_settings(KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="host:port"):
        check_settings(KafkaSettings(bootstrap="no-port"))
    check_settings(SASL)
