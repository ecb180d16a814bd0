"""confluent-kafka (librdkafka) errors -> the bus's `KafkaError` tree.

Two sources: an operation's own error (`KafkaException.args[0]`, a delivery
report, a consumed error event), and librdkafka's `error_cb`, which is the only
place a wrong password or a failed TLS handshake is reported while the client
retries in the background. `watched()` decides which `error_cb` errors are
decisive (nothing will get better by waiting); the others only go to the log.
"""

from __future__ import annotations

from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException

from bus.adapters.kafka._common import OperationContext
from bus.config import KafkaSettings
from bus.errors import (
    AuthenticationFailed,
    Fenced,
    KafkaError,
    KafkaOperationFailed,
    NotAuthorized,
    OutcomeUnknown,
    ProtocolMismatch,
    RecordTooLarge,
    TlsFailed,
)

E = CKafkaError


class Context(OperationContext):
    """An operation's context, with this engine's way of reading the denied resource."""

    def resource(self, code: int) -> str | None:
        if code == E.TOPIC_AUTHORIZATION_FAILED and self.topic:
            return f"topic {self.topic}"
        if code == E.GROUP_AUTHORIZATION_FAILED and self.group:
            return f"group {self.group}"
        if code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED and self.transactional_id:
            return f"transactional id {self.transactional_id}"
        if code == E.CLUSTER_AUTHORIZATION_FAILED:
            return "cluster"
        return (self.topic and f"topic {self.topic}") or None


_DENIED = (E.TOPIC_AUTHORIZATION_FAILED, E.GROUP_AUTHORIZATION_FAILED,
           E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED,
           E.DELEGATION_TOKEN_AUTHORIZATION_FAILED)
_FENCED = (E._FENCED, E.PRODUCER_FENCED, E.INVALID_PRODUCER_EPOCH, E.FENCED_INSTANCE_ID)
_TOO_LARGE = (E.MSG_SIZE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE)
_TIMEOUTS = (E._TIMED_OUT, E._MSG_TIMED_OUT, E._TIMED_OUT_QUEUE)


def from_exception(exc: KafkaException, context: Context) -> KafkaError:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], CKafkaError) else None
    if err is None:
        return KafkaOperationFailed(f"{context.action} failed: {exc}")
    return from_error(err, context)


def from_error(err: CKafkaError, context: Context) -> KafkaError:
    """The typed error for one librdkafka error about `context`."""
    code, text = err.code(), err.str()
    if code in _DENIED:
        resource = context.resource(code)
        return NotAuthorized(f"not authorised: {context.action} denied"
                             + (f" on {resource}" if resource else "") + f" ({text})", resource)
    if code in _FENCED:
        return Fenced(f"{context.action}: another instance took over"
                      + (f" transactional id {context.transactional_id}" if context.transactional_id else "")
                      + f" ({text})")
    if code in _TOO_LARGE:
        return RecordTooLarge(f"{context.action}: record too large ({text})")
    if code in _TIMEOUTS or (err.retriable() and not err.txn_requires_abort()):
        return OutcomeUnknown(f"{context.action} did not finish in time; it may or may not have "
                              f"taken effect ({text})")
    if code in (E._AUTHENTICATION, E.SASL_AUTHENTICATION_FAILED):
        return AuthenticationFailed(f"authentication failed: {text}")
    if err.txn_requires_abort():
        return KafkaOperationFailed(f"{context.action} failed, the transaction must be aborted ({text})")
    if err.fatal():
        return KafkaOperationFailed(f"{context.action} failed fatally, the client must be recreated ({text})")
    return KafkaOperationFailed(f"{context.action} failed: {text}")


def watched(err: CKafkaError, settings: KafkaSettings) -> KafkaError | None:
    """The error to raise for an `error_cb` report, or None if waiting may still help.

    Authentication, TLS and protocol errors repeat forever; they are decisive.
    Transport errors and "all brokers down" are not (a broker may be restarting);
    a client that never connected reports them through its connection check.
    """
    code, text = err.code(), err.str()
    where = settings.bootstrap
    if code in (E._AUTHENTICATION, E.SASL_AUTHENTICATION_FAILED):
        if "handshake failed" in text or ("mechanism" in text and "supported" in text):
            return ProtocolMismatch(
                f"{where} did not accept a SASL {settings.sasl_mechanism} handshake: the listener "
                f"does not speak SASL, or not that mechanism (check --security-protocol and the port): {text}")
        return AuthenticationFailed(
            f"authentication failed at {where} as {settings.sasl_username!r}: wrong user name or "
            f"password ({_tail(text)})")
    if code == E._SSL or (code == E._TRANSPORT and "SSL handshake failed" in text):
        return TlsFailed(f"TLS with {where} failed: {_tail(text)}")
    return None


def _tail(text: str) -> str:
    """librdkafka's message without the "sasl_ssl://host:port/bootstrap: " prefix."""
    _, sep, rest = text.partition("/bootstrap: ")
    return rest if sep else text
