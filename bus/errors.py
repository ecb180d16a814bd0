"""Every exception the bus raises, in one tree (the way httpx keeps `_exceptions.py`).

Callers catch what they can act on and let the rest reach the CLI, which prints
one line and exits with the class's `exit_code`:

    BusError                              any problem a human can act on (exit 2)
    ├── InvalidInput                      something given to us is wrong; `errors` names the fields
    │   ├── AlertValidationError          an alert breaks a rule of its model
    │   │   └── EncryptionError           an alert cannot be encrypted as asked (no recipient key, ...)
    │   ├── AlertFileError                a file of alerts is unreadable or holds invalid alerts (`problems`)
    │   ├── FileRejected                  a connector's input file as a whole is unusable (`problems`)
    │   ├── PolicyValidationError         a routing policy breaks a rule; `located` keeps raw locations
    │   ├── PolicyFileError               a policy or case file is unreadable or invalid (`problems`)
    │   ├── SecretsError                  the secrets file is unsafe, unreadable or malformed
    │   ├── UnknownCodeError              an EMPACT cycle or priority code is not in the code list
    │   ├── ConfigError                   a settings file or option is wrong
    │   │   └── ConnectorConfigError      a connector's configuration (`source`, `problems`)
    │   ├── DirectoryError                the federation directory must not be used (`problem`)
    │   ├── PlanError                     directory + policy cannot be turned into safe grants
    │   ├── CodeListError                 a code list file is wrong
    │   ├── KeyOwnerMismatch              the signing key belongs to another member than the one named (exit 10)
    │   ├── KeyFileError                  a key file is missing, unreadable or of the wrong kind
    │   ├── UsersFileError                the console's users file is unreadable or malformed
    │   └── TaxiiRequestError             a TAXII request's parameter is wrong (`parameter` names it)
    ├── VerificationError                 a received record must not be trusted; `reason` says why
    │   ├── SignatureError                    bad-signature
    │   ├── SchemaError                       bad-schema
    │   ├── UnknownKeyError                   unknown-key
    │   └── DecryptionError                   encrypted, not-a-recipient, no-decryption-key, decryption-failed
    ├── KafkaError                        talking to Kafka failed (raised by bus.adapters.kafka)
    │   ├── KafkaUnavailable              no broker answered (exit 3)
    │   ├── AuthenticationFailed          the broker refused our credentials (exit 4)
    │   ├── NotAuthorized                 an ACL denies an operation; names the resource (exit 5)
    │   ├── TlsFailed                     the TLS handshake or certificate check failed (exit 6)
    │   ├── ProtocolMismatch              settings that cannot work together, e.g. SASL without a SASL protocol (exit 7)
    │   ├── Fenced                        another instance took over our transactional id
    │   ├── OutcomeUnknown                an operation timed out; it may or may not have happened
    │   ├── RecordTooLarge                a record is over a client or broker size limit
    │   └── KafkaOperationFailed          anything else the broker or client reported
    ├── BrokerError                       the local Kafka process could not be started or stopped
    ├── ServiceError                      a service could not do its job
    │   ├── PublishError                  Kafka did not acknowledge an alert
    │   ├── ProvisionError                the cluster could not be brought to the planned state
    │   ├── RejectedAlerts                the router rejected alerts we waited for (exit 8)
    │   ├── AlreadyRunning                a router instance of that name already runs on this host
    │   ├── TopologyMismatch              the cluster's topics are not shaped as the router needs
    │   ├── AuditFailed                   the audit trail did not verify (exit 1)
    │   ├── FeedIndexError                the console's feed index file cannot be used
    │   └── BatchNotCommitted             a router transaction did not commit (the router recovers)
    └── WaitTimedOut                      we stopped waiting for an answer (exit 9)

No exception class is defined anywhere else in bus/ or connectors/
(tests/unit/test_exception_tree.py walks the source to keep it so); modules that
offered one before re-export it where it is public API (`connectors.sdk.ConfigError`
is `ConnectorConfigError`, `connectors.sdk.inbox.FileRejected`).

The reason codes of `VerificationError` are the wire format's vocabulary
(`RejectReason`, docs/wire-format.md); the same code reaches the dead-letter
topic, the audit trail, the sender's receipt and the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

__all__ = [
    "AlertFileError",
    "AlertValidationError",
    "AlreadyRunning",
    "AuditFailed",
    "AuthenticationFailed",
    "BatchNotCommitted",
    "BrokerError",
    "BusError",
    "CodeListError",
    "ConfigError",
    "ConnectorConfigError",
    "DecryptionError",
    "DirectoryError",
    "EncryptionError",
    "FeedIndexError",
    "Fenced",
    "FileRejected",
    "InvalidInput",
    "KafkaError",
    "KafkaOperationFailed",
    "KafkaUnavailable",
    "KeyFileError",
    "KeyOwnerMismatch",
    "Loc",
    "NotAuthorized",
    "OutcomeUnknown",
    "PlanError",
    "PolicyFileError",
    "PolicyValidationError",
    "ProtocolMismatch",
    "ProvisionError",
    "PublishError",
    "RecordTooLarge",
    "RejectReason",
    "RejectedAlerts",
    "SchemaError",
    "SecretsError",
    "ServiceError",
    "SignatureError",
    "TaxiiRequestError",
    "TlsFailed",
    "TopologyMismatch",
    "UnknownCodeError",
    "UnknownKeyError",
    "UsersFileError",
    "VerificationError",
    "WaitTimedOut",
    "format_loc",
    "quote",
]

QUOTE_LIMIT = 64
"""Characters of an untrusted value an error detail quotes before it cuts the value short."""
DETAIL_LIMIT = 1000
"""Longest detail a VerificationError keeps: details reach audit entries and dead-letter headers."""


def quote(value: str | bytes, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of an untrusted value for an error detail, bounded: at most `limit` characters
    of it, then `...(N bytes)`, so a hostile 500 KB header cannot make a 500 KB message."""
    size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8", "surrogatepass"))
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}...({size} bytes)"


Loc = tuple[str | int, ...]
"""Where in a document a problem is, as pydantic reports it: `('rules', 2, 'deliver_to', 0)`."""


def format_loc(loc: Loc, whole: str = "policy") -> str:
    """`('rules', 2, 'deliver_to', 0)` -> `rules[2].deliver_to[0]` (what operators read);
    `whole` names the document itself (the empty location)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or whole


def _listed(problems: Sequence[str]) -> str:
    """One problem on the line, several indented below it."""
    return "\n  ".join(["", *problems]) if len(problems) > 1 else (problems[0] if problems else "")


def _bounded(detail: str) -> str:
    if len(detail) <= DETAIL_LIMIT:
        return detail
    return f"{detail[:DETAIL_LIMIT]}...({len(detail)} characters)"


class RejectReason(StrEnum):
    """Why a record was not routed. Stable strings: they are part of the wire format."""

    UNKNOWN_KEY = "unknown-key"
    KEY_NOT_OWNED = "key-not-owned-by-producer"
    TYPE_NOT_ALLOWED = "type-not-allowed"
    KEY_NOT_YET_VALID = "key-not-yet-valid"
    KEY_EXPIRED = "key-expired"
    KEY_REVOKED = "key-revoked"
    STALE = "stale"
    FUTURE = "future"
    EXPIRED = "expired"
    REPLAY = "replay"
    BAD_SIGNATURE = "bad-signature"
    BAD_SCHEMA = "bad-schema"
    MISPLACED = "misplaced"
    """On a partition or topic other than the one its signed key and type map to."""
    UNDECODABLE = "undecodable"
    """The Kafka client could not decode the record (e.g. a header name that is not UTF-8)."""
    OVERSIZED = "oversized"
    """The record (or its dead-letter copy) is over a size limit; a bounded summary is kept."""
    UNSUPPORTED_FORMAT = "unsupported-format"
    """A wire format version that is no longer accepted (after its transition window)."""
    NOT_RECEIVED = "not-received"
    """An acknowledgement for an alert the acknowledging member was never sent."""
    INTERNAL_ERROR = "internal-error"
    """The router failed on this record in a way no rule describes: a bug worth a report."""
    # Encrypted alerts (docs/wire-format.md, "Encrypted alerts"). The router never decrypts:
    # only `encrypted` can reach it (a verifier that does not handle encrypted alerts); the
    # other three are a reader's verdicts on a record it tried to decrypt.
    ENCRYPTED = "encrypted"
    """An encrypted alert reached a verifier that does not decrypt (no decryption key given)."""
    NOT_A_RECIPIENT = "not-a-recipient"
    """The reader's member holds no wrapped data key in this encrypted alert."""
    NO_DECRYPTION_KEY = "no-decryption-key"
    """The reader is a recipient, but its data key is wrapped for an encryption key it did not give."""
    DECRYPTION_FAILED = "decryption-failed"
    """A wrapped key or the ciphertext does not authenticate (altered, or bound to another context)."""


class BusError(Exception):
    """Base class: a message a human can act on. `exit_code` is what the CLI exits with."""

    exit_code: int = 2


# -- bad input ---------------------------------------------------------------------------------


class InvalidInput(BusError):
    """Something we were given is wrong. `errors` lists (field path, message) pairs when known."""

    def __init__(self, message: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        self.errors = list(errors)
        super().__init__(message)


class AlertValidationError(InvalidInput):
    """An alert failed validation; `errors` lists (field path, message) pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        lines = "; ".join(f"{loc}: {msg}" for loc, msg in errors)
        super().__init__(f"invalid alert: {lines}", errors)


class ConfigError(InvalidInput):
    """A settings file, environment variable or option is wrong."""


class DirectoryError(InvalidInput):
    """The federation directory must not be used; `problem` is a stable short code for logs.

    Codes: unsigned, unknown-authority, bad-signature, rollback, replaced, invalid, file.
    """

    def __init__(self, message: str, problem: str = "invalid") -> None:
        self.problem = problem
        super().__init__(message)


class PlanError(InvalidInput):
    """The directory and policy cannot be turned into a safe set of grants."""


class CodeListError(InvalidInput):
    """A code list (e.g. the EMPACT priorities) is malformed."""


class KeyFileError(InvalidInput):
    """A key file is missing, unreadable or not the expected kind of key."""


class KeyOwnerMismatch(InvalidInput):
    """The signing key given belongs to another member than the one we are asked to sign as: the
    directory lists it for that member, or its file is named after that member (`EUROPOL.key`).
    Refused before anything is sent, since the router would dead-letter every alert
    (`key-not-owned-by-producer`) where the sender may never look."""

    exit_code = 10


class UsersFileError(InvalidInput):
    """The console's users file (officers and their password hashes) is unreadable or malformed."""


class TaxiiRequestError(InvalidInput):
    """A TAXII client's request cannot be answered as asked: a `next` cursor that is not ours or
    continues another query, a bad `limit`, `added_after` or `match[...]`. `parameter` names it."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}", [(parameter, problem)])


class AlertFileError(InvalidInput):
    """A file of alerts (JSON, JSON lines) is unreadable or holds invalid alerts; `problems` are
    located (`line 3: ...`) so the sender can fix every one in one pass."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: {_listed(self.problems)}", [(str(path), p) for p in self.problems])


class FileRejected(InvalidInput):
    """A connector's input file as a whole is unusable (not JSON, not EDIFACT, missing columns...):
    the file is set aside with a report, its rows are not tried one by one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems), [("file", p) for p in self.problems])


class PolicyValidationError(InvalidInput):
    """A policy (or case) is invalid. `located` keeps pydantic's raw locations so a file reader can
    add line numbers; `errors` has them formatted (`rules[2].deliver_to[0]`)."""

    def __init__(self, errors: Sequence[tuple[Loc, str]]) -> None:
        self.located = list(errors)
        formatted = [(format_loc(loc), msg) for loc, msg in self.located]
        super().__init__("invalid policy: " + "; ".join(f"{loc}: {msg}" for loc, msg in formatted), formatted)


class PolicyFileError(InvalidInput):
    """A policy or case file is unreadable or invalid; `problems` are located lines."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems), [(source, p) for p in self.problems])


class SecretsError(InvalidInput):
    """The secrets file is unsafe, unreadable or malformed (the message never holds a secret)."""


class UnknownCodeError(InvalidInput):
    """An EMPACT cycle or priority code is not in the code list; the message lists the valid ones."""


class ConnectorConfigError(ConfigError):
    """A connector's configuration is unusable; `problems` lists every one at once, `source` says
    where it came from (a file, an environment variable, a section)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"connector config {source} is invalid:\n  " + "\n  ".join(self.problems),
                         [(source, p) for p in self.problems])


class EncryptionError(AlertValidationError):
    """An alert cannot be encrypted as asked: no recipients named, a recipient without a valid
    encryption key, no directory to find keys in. Like any invalid alert it is never retried."""


# -- records that must not be trusted -----------------------------------------------------------


class VerificationError(BusError):
    """A received record must not be trusted; `reason` says why, `detail` says what was seen.

    `producer` is set once the record's signature verified with a key the directory lists
    for its claimed producer: only then may the producer be told (a receipt) about it.
    """

    reason: RejectReason = RejectReason.BAD_SIGNATURE

    def __init__(self, detail: str, reason: RejectReason | None = None, *, producer: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        self.detail = _bounded(detail)
        self.producer = producer
        super().__init__(f"{self.reason}: {self.detail}")


class SignatureError(VerificationError):
    reason = RejectReason.BAD_SIGNATURE


class SchemaError(VerificationError):
    reason = RejectReason.BAD_SCHEMA


class UnknownKeyError(VerificationError):
    reason = RejectReason.UNKNOWN_KEY


class DecryptionError(VerificationError):
    """An encrypted alert this reader cannot (or must not) read; `reason` says which case."""

    reason = RejectReason.DECRYPTION_FAILED


# -- Kafka ----------------------------------------------------------------------------------------


class KafkaError(BusError):
    """Talking to Kafka failed. Raised only by `bus.adapters.kafka`, whichever engine runs."""


class KafkaUnavailable(KafkaError):
    """No broker answered at the configured bootstrap address (or all brokers went away)."""

    exit_code = 3


class AuthenticationFailed(KafkaError):
    """The broker refused our credentials (wrong user or password, or wrong mechanism)."""

    exit_code = 4


class NotAuthorized(KafkaError):
    """An ACL denies an operation. `resource` names what was denied, e.g. "topic audit"."""

    exit_code = 5

    def __init__(self, message: str, resource: str | None = None) -> None:
        self.resource = resource
        super().__init__(message)


class TlsFailed(KafkaError):
    """The TLS handshake failed: an unknown CA, a wrong host name, or not TLS at all."""

    exit_code = 6


class ProtocolMismatch(KafkaError):
    """Settings that cannot work together, e.g. SASL credentials without a SASL protocol."""

    exit_code = 7


class Fenced(KafkaError):
    """Another producer with our transactional id took over; this instance must stop."""


class OutcomeUnknown(KafkaError):
    """An operation did not finish in time; it may or may not have taken effect."""


class RecordTooLarge(KafkaError):
    """A record is over the client's or the broker's size limit."""


class KafkaOperationFailed(KafkaError):
    """Any other failure the client or the broker reported."""


# -- processes and services -------------------------------------------------------------------------


class BrokerError(BusError):
    """The local Kafka broker could not be set up, started or stopped."""


class ServiceError(BusError):
    """A service could not do its job."""


class FeedIndexError(ServiceError):
    """The feed index (the console's SQLite copy of a feed) cannot be opened or used."""


class BatchNotCommitted(ServiceError):
    """A router transaction did not commit. Internal to the router, which recovers by `kind`:
    `record` (a record's doing: bisect the batch), `group` (lost the group: rewind),
    `unknown` (recover the producer and retry). `source` is the offending input's index when known."""

    def __init__(self, kind: str, error: BaseException, source: int | None = None) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.error = error
        self.source = source


class PublishError(ServiceError):
    """Kafka did not acknowledge an alert; it may not have been published."""


class ProvisionError(ServiceError):
    """The cluster could not be brought to the planned state."""


class RejectedAlerts(ServiceError):
    """The router rejected alerts we waited for; `reasons` maps message id to reason code."""

    exit_code = 8

    def __init__(self, message: str, reasons: dict[str, str] | None = None) -> None:
        self.reasons = dict(reasons or {})
        super().__init__(message)


class AlreadyRunning(ServiceError):
    """A router instance with this name holds its lock on this host (another process runs it)."""


class TopologyMismatch(ServiceError):
    """Co-partitioned topics with different partition counts, or an assignment that splits a task:
    the router stops rather than guess (names the topic and the counts)."""


class AuditFailed(ServiceError):
    """The audit trail did not verify: a chain is broken, forked or rewritten, or a checkpoint is bad."""

    exit_code = 1


class WaitTimedOut(BusError):
    """We stopped waiting for an answer (a receipt, a record) before it came."""

    exit_code = 9
