"""kafka-python errors -> the bus's `KafkaError` tree."""

from __future__ import annotations

import kafka.errors as E

from bus.adapters.kafka._common import OperationContext
from bus.errors import (
    AuthenticationFailed,
    Fenced,
    KafkaError,
    KafkaOperationFailed,
    KafkaUnavailable,
    NotAuthorized,
    OutcomeUnknown,
    ProtocolMismatch,
    RecordTooLarge,
)


class Context(OperationContext):
    """An operation's context, with this engine's way of reading the denied resource."""

    def resource(self, exc: Exception) -> str | None:
        if isinstance(exc, E.TopicAuthorizationFailedError):
            return f"topic {self.topic}" if self.topic else _named(exc, "topic")
        if isinstance(exc, E.GroupAuthorizationFailedError):
            return f"group {self.group}" if self.group else _named(exc, "group")
        if isinstance(exc, E.TransactionalIdAuthorizationFailedError):
            return f"transactional id {self.transactional_id}" if self.transactional_id else None
        if isinstance(exc, E.ClusterAuthorizationFailedError):
            return "cluster"
        return None


def _named(exc: Exception, kind: str) -> str | None:
    """kafka-python puts the denied names in the message, e.g. "...: {'audit'}"."""
    text = str(exc)
    if "{" in text and "}" in text:
        names = text[text.rindex("{") + 1:text.rindex("}")].replace("'", "").strip()
        return f"{kind} {names}" if names else None
    return None


_WRAPPED_DENIALS = {
    "ClusterAuthorizationFailedError": E.ClusterAuthorizationFailedError,
    "TransactionalIdAuthorizationFailedError": E.TransactionalIdAuthorizationFailedError,
    "TopicAuthorizationFailedError": E.TopicAuthorizationFailedError,
    "GroupAuthorizationFailedError": E.GroupAuthorizationFailedError,
}
"""kafka-python sometimes reports a denial inside a plain KafkaError ("Unexpected error in
InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError"): recognised by name."""


def from_kafka_python(exc: Exception, context: Context) -> KafkaError:
    """The typed error for one kafka-python exception about `context`."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if not isinstance(exc, E.AuthorizationError):
        wrapped = next((cls for name, cls in _WRAPPED_DENIALS.items() if name in str(exc)), None)
        if wrapped is not None:
            exc = wrapped(str(exc))
    if isinstance(exc, E.AuthorizationError):
        resource = context.resource(exc)
        return NotAuthorized(f"not authorised: {context.action} denied"
                             + (f" on {resource}" if resource else "") + f" ({text})", resource)
    if isinstance(exc, E.ProducerFencedError | E.InvalidProducerEpochError | E.FencedInstanceIdError):
        return Fenced(f"{context.action}: another instance took over"
                      + (f" transactional id {context.transactional_id}" if context.transactional_id else "")
                      + f" ({text})")
    if isinstance(exc, E.MessageSizeTooLargeError | E.RecordListTooLargeError):
        return RecordTooLarge(f"{context.action}: record too large ({text})")
    if isinstance(exc, E.SaslAuthenticationFailedError):
        return AuthenticationFailed(f"authentication failed ({text})")
    if isinstance(exc, E.IllegalSaslStateError | E.UnsupportedSaslMechanismError):
        return ProtocolMismatch(f"{context.action}: the broker did not accept our SASL handshake ({text})")
    if isinstance(exc, E.KafkaConnectionError):
        return KafkaUnavailable(f"{context.action}: lost the connection to Kafka ({text})")
    if isinstance(exc, E.KafkaTimeoutError | E.RequestTimedOutError):
        return OutcomeUnknown(f"{context.action} did not finish in time; it may or may not have "
                              f"taken effect ({text})")
    if isinstance(exc, E.TransactionAbortedError | E.InvalidTxnStateError):
        return KafkaOperationFailed(f"{context.action} failed, the transaction must be aborted ({text})")
    return KafkaOperationFailed(f"{context.action} failed: {text}")
