"""Encrypted alerts: only the members the producer names can read the body.

Whoever runs the core (router, auditor, broker admin, disks) must learn nothing
from a TLP:RED or H2/H3 alert but what routing needs. So the producer encrypts
the alert to the recipients it names in `release_to`, and the record carries:

- the routing facts in clear (`ClearHeader`: the fields `bus.core.policy` reads,
  plus identity and expiry for the router's replay and freshness checks);
- the whole alert, padded and encrypted with a fresh 32-byte data key
  (ChaCha20-Poly1305), with every byte of the value before the ciphertext as
  associated data;
- the data key wrapped for each recipient with HPKE (RFC 9180; DHKEM(X25519,
  HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode).

The record is then signed exactly as a plain alert (`bus.core.sealing`), with the
message id as record key so that the key reveals no container or subject.
Format, byte by byte: docs/wire-format.md, "Encrypted alerts".

What binds what (so that nothing can be moved from where it was put):

- The producer's Ed25519 signature covers the record key, the envelope headers
  and the whole value (clear header, nonce, every wrapped key, ciphertext): nobody
  but the producer can change, add, drop or swap anything.
- HPKE binds each wrapped key to its recipient's key (it is encrypted to it) and,
  through `info`, to the message id, the recipient member and that key's id: a
  wrapped key moved to another entry, key id or alert opens nothing.
- The record commits to the data key (`key_commitment`, a hash of it): every
  recipient must open that very key, so all read the same alert; ChaCha20-Poly1305
  alone would let a producer craft one ciphertext that opens differently per key.
- The AEAD's associated data is every byte of the value before the ciphertext
  (schema fingerprint, clear header, nonce, key commitment, wrapped-key list): a
  ciphertext lifted into another envelope, even one its producer signs again, does
  not decrypt.
- After decryption the alert's header must equal the clear header: the facts the
  alert was routed on are the facts it states.

Pure: no I/O. Randomness comes from the OS (data key, nonce, HPKE ephemeral key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.core.codec import SchemaSet
from bus.core.codelists import (
    EMPACT_CODES,
    EmpactCodeList,
    HandlingCode,
    InformationAssessment,
    SourceReliability,
    Tlp,
)
from bus.core.envelope import KEY_ID_RE, CloudEventMeta, format_time
from bus.core.keyring import KeyResolver
from bus.core.keys import DecryptionKey, EncryptionPublicKey, SigningKey
from bus.core.models import (
    AlertHeader,
    AlertType,
    BaseAlert,
    CountryCode,
    EmpactPriority,
    MemberId,
    MessageId,
    UniqueList,
    UnLocode,
    UtcDatetime,
)
from bus.core.policy import RoutingFacts
from bus.core.sealing import (
    SealedRecord,
    VerifiedAlert,
    attributed_to,
    authenticate,
    check_signer,
    decode_verified,
    seal,
    sign_value,
)
from bus.core.signing import V1_0_ACCEPTED_UNTIL, Headers, WireVersion
from bus.errors import (
    BusError,
    DecryptionError,
    EncryptionError,
    RejectReason,
    SchemaError,
    SignatureError,
)

__all__ = [
    "DATA_KEY_SIZE",
    "KEY_COMMITMENT_LABEL",
    "NONCE_SIZE",
    "PAD_BLOCK",
    "SUITE",
    "WRAP_INFO_LABEL",
    "ClearHeader",
    "Decryptor",
    "EncryptMode",
    "EncryptionKeyOwners",
    "EncryptionPolicy",
    "RecipientKeys",
    "VerifiedEnvelope",
    "WrappedKey",
    "decrypt",
    "encrypt_value",
    "key_commitment",
    "needs_encryption",
    "pad",
    "recipient_keys",
    "recipients_with_keys",
    "seal_encrypted",
    "unpad",
    "unseal_and_decrypt",
    "unseal_any",
    "wrap_info",
]

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
"""HPKE suite of the wrapped data keys (RFC 9180 ids: KEM 0x0020, KDF 0x0001, AEAD 0x0003)."""
DATA_KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
ENC_SIZE = 32
"""HPKE `enc`: the sender's ephemeral X25519 public key."""
SEALED_KEY_SIZE = DATA_KEY_SIZE + TAG_SIZE
PAD_BLOCK = 256
"""The encrypted alert is padded to a multiple of this, so its length says little about it."""
WRAP_INFO_LABEL = b"EPA-BUS-ENC/1 wrapped-key"
"""First part of every HPKE `info` (then 00 and the bound values), see `wrap_info`."""
KEY_COMMITMENT_LABEL = b"EPA-BUS-ENC/1 key commitment"
"""Hashed with the data key into `key_commitment`, see `key_commitment`."""


# -- which alerts are encrypted --------------------------------------------------------------


class EncryptMode(StrEnum):
    """A producer's choice: `auto` encrypts what `needs_encryption` says, the others all or none."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


def needs_encryption(header: AlertHeader) -> str | None:
    """Why this alert is encrypted by default (TLP:RED, H2, H3), or None if it is not."""
    if header.tlp is Tlp.RED:
        return "TLP:RED"
    codes = [c.value for c in (HandlingCode.H2, HandlingCode.H3) if c in header.handling_codes]
    return "handling code " + "/".join(codes) if codes else None


class RecipientKeys(Protocol):
    """Where a producer finds recipients' encryption keys (the federation directory)."""

    def encryption_key_for(self, member_id: str, at: datetime) -> EncryptionPublicKey:
        """The key to wrap for, for an alert created at `at`; EncryptionError if there is none."""
        ...


class EncryptionKeyOwners(Protocol):
    """Who owns an encryption key, if it is valid at a time (the federation directory)."""

    def encryption_key_owner(self, key_id: str, at: datetime) -> str | None: ...


# -- the clear header ------------------------------------------------------------------------


def _enum_to_avro(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, list):
        return [_enum_to_avro(v) for v in value]
    return value


_AVRO_ENUMS: Mapping[str, type[Enum]] = {
    "alert_type": AlertType,
    "tlp": Tlp,
    "handling_codes": HandlingCode,
    "source_reliability": SourceReliability,
    "information_assessment": InformationAssessment,
}


class ClearHeader(BaseModel):
    """The header fields an encrypted alert keeps in clear (docs/wire-format.md says why each).

    Validated with the same field rules as `AlertHeader`; `release_to` must not be empty.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    message_id: MessageId
    alert_type: AlertType
    producer: MemberId
    created: UtcDatetime
    expires: UtcDatetime | None = None
    tlp: Tlp
    handling_codes: UniqueList[HandlingCode] = Field(default_factory=list)
    source_reliability: SourceReliability
    information_assessment: InformationAssessment
    empact_priority: EmpactPriority | None = None
    release_to: UniqueList[MemberId] = Field(min_length=1)
    countries: UniqueList[CountryCode] = Field(default_factory=list)
    ports: UniqueList[UnLocode] = Field(default_factory=list)

    @classmethod
    def of(cls, header: AlertHeader) -> ClearHeader:
        """The clear part of a (valid) alert header; EncryptionError if it names no recipient."""
        if not header.release_to:
            raise EncryptionError([(
                "header.release_to",
                "an encrypted alert must name its recipients: list the member ids that may read it",
            )])
        return cls.model_validate({name: getattr(header, name) for name in cls.model_fields})

    def routing_facts(self) -> RoutingFacts:
        return RoutingFacts(
            alert_type=self.alert_type,
            producer=self.producer,
            tlp=self.tlp,
            handling_codes=frozenset(self.handling_codes),
            source_reliability=self.source_reliability,
            information_assessment=self.information_assessment,
            empact_priority=self.empact_priority,
            release_to=tuple(self.release_to),
            countries=tuple(self.countries),
            ports=tuple(self.ports),
        )

    def to_avro(self) -> dict[str, Any]:
        record = {name: _enum_to_avro(getattr(self, name)) for name in type(self).model_fields}
        if self.empact_priority is not None:
            record["empact_priority"] = self.empact_priority.model_dump()
        return record

    @classmethod
    def from_avro(cls, record: Mapping[str, Any], *, empact_codes: EmpactCodeList) -> ClearHeader:
        """Re-validate a decoded clear header; SchemaError naming the fields otherwise."""
        data = dict(record)
        try:
            for name, enum in _AVRO_ENUMS.items():
                value = data.get(name)
                if isinstance(value, list):
                    data[name] = [enum[v] for v in value]
                elif value is not None:
                    data[name] = enum[value]
            return cls.model_validate(data, context={EMPACT_CODES: empact_codes})
        except KeyError as exc:
            raise SchemaError(f"encrypted alert's clear header has an unknown symbol {exc}") from None
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'header'}: {e['msg']}" for e in exc.errors()
            )
            raise SchemaError(f"encrypted alert's clear header is not valid: {fields}") from None


# -- wrapped keys ----------------------------------------------------------------------------


def _part(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def wrap_info(message_id: uuid.UUID | str, member: str, key_id: str) -> bytes:
    """HPKE `info` of one wrapped key: binds it to this alert, this recipient and this key.

    `WRAP_INFO_LABEL || 00 || part(message id) || part(member) || part(key id)`, each value
    ASCII (canonical lower-case UUID, member id, 32-hex key id), `part(b) = u32be(len b) || b`.
    """
    return b"".join([
        WRAP_INFO_LABEL, b"\x00",
        _part(str(uuid.UUID(str(message_id))).encode("ascii")),
        _part(member.encode("ascii")),
        _part(key_id.encode("ascii")),
    ])


@dataclass(frozen=True)
class WrappedKey:
    """The data key, sealed to one recipient's encryption key."""

    member: str
    key_id: str
    enc: bytes
    sealed_key: bytes

    def to_avro(self) -> dict[str, Any]:
        return {"member": self.member, "key_id": self.key_id, "enc": self.enc, "sealed_key": self.sealed_key}


def key_commitment(data_key: bytes) -> bytes:
    """SHA-256(KEY_COMMITMENT_LABEL || 00 || data key).

    ChaCha20-Poly1305 does not commit to its key: one ciphertext can be made to open under
    two keys to two plaintexts. Signed into the record, this makes every recipient open
    the same data key, so all of them read the same alert, and the producer cannot later
    show another key for what it signed.
    """
    return hashlib.sha256(KEY_COMMITMENT_LABEL + b"\x00" + data_key).digest()


def pad(data: bytes) -> bytes:
    """`data || 80 || 00...` up to the next multiple of PAD_BLOCK (always at least one byte added)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % PAD_BLOCK)


def unpad(data: bytes) -> bytes:
    """Inverse of `pad`; SchemaError if the padding is malformed."""
    if not data or len(data) % PAD_BLOCK:
        raise SchemaError(f"padded plaintext of {len(data)} bytes is not a multiple of {PAD_BLOCK}")
    end = len(data.rstrip(b"\x00")) - 1
    if end < 0 or data[end] != 0x80:
        raise SchemaError("padding of the encrypted alert is malformed (no 80 marker)")
    return data[:end]


# -- encrypting ------------------------------------------------------------------------------


def recipient_keys(header: AlertHeader, keys: RecipientKeys) -> list[tuple[str, EncryptionPublicKey]]:
    """(member, key) for each member of release_to, for an alert created at `header.created`.

    Raises one EncryptionError naming every recipient that has no valid encryption key.
    """
    if not header.release_to:
        ClearHeader.of(header)  # raises the field error
    found: list[tuple[str, EncryptionPublicKey]] = []
    problems: list[tuple[str, str]] = []
    for i, member in enumerate(header.release_to):
        try:
            found.append((member, keys.encryption_key_for(member, header.created)))
        except EncryptionError as exc:
            problems += [(f"header.release_to[{i}]", message) for _, message in exc.errors]
    if problems:
        raise EncryptionError(problems)
    return found


def encrypt_value(
    alert: BaseAlert,
    keys: RecipientKeys,
    schemas: SchemaSet,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> bytes:
    """The `eu.epa.bus.EncryptedAlert` value of `alert`, wrapped for each member of release_to.

    Each recipient gets the key `keys` names valid at the alert's `created`. Raises
    EncryptionError naming every recipient without one (nothing is encrypted then).
    """
    header = alert.header
    clear = ClearHeader.of(header)
    found = recipient_keys(header, keys)

    data_key = random_bytes(DATA_KEY_SIZE)
    nonce = random_bytes(NONCE_SIZE)
    wrapped = []
    for member, public in found:
        sealed = SUITE.encrypt(data_key, public.key, info=wrap_info(header.message_id, member, public.key_id))
        wrapped.append(WrappedKey(member, public.key_id, sealed[:ENC_SIZE], sealed[ENC_SIZE:]))

    plaintext = pad(schemas.encode(str(alert.alert_type), alert.to_avro()))
    ciphertext_size = len(plaintext) + TAG_SIZE
    # The ciphertext is the last field, so the value is `associated data || ciphertext`:
    # encode once with a placeholder of the right length, then replace its bytes.
    placeholder = schemas.encode_encrypted({
        "header": clear.to_avro(),
        "nonce": nonce,
        "key_commitment": key_commitment(data_key),
        "recipients": [w.to_avro() for w in wrapped],
        "ciphertext": bytes(ciphertext_size),
    })
    associated_data = placeholder[:-ciphertext_size]
    ciphertext = ChaCha20Poly1305(data_key).encrypt(nonce, plaintext, associated_data)
    assert len(ciphertext) == ciphertext_size
    return associated_data + ciphertext


def seal_encrypted(
    alert: BaseAlert,
    signer: SigningKey,
    keys: RecipientKeys,
    schemas: SchemaSet,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> SealedRecord:
    """Encrypt `alert` to its release_to and sign the record as its producer.

    Same topic and envelope as a plain alert; the record key is the message id.
    """
    check_signer(alert, signer)
    value = encrypt_value(alert, keys, schemas, random_bytes=random_bytes)
    return sign_value(alert, signer, str(alert.header.message_id).encode("ascii"), value)


@dataclass(frozen=True)
class EncryptionPolicy:
    """Which alerts a producer encrypts, and where it finds the recipients' keys.

    `seal` is what publishers call instead of `bus.core.sealing.seal`. Without `keys`,
    alerts that must be encrypted are refused with an EncryptionError that says so.
    """

    mode: EncryptMode = EncryptMode.AUTO
    keys: RecipientKeys | None = None

    def reason(self, alert: BaseAlert) -> str | None:
        """Why `alert` is encrypted under this policy, or None if it goes in clear."""
        if self.mode is EncryptMode.NEVER:
            return None
        if self.mode is EncryptMode.ALWAYS:
            return "encryption was asked for"
        return needs_encryption(alert.header)

    def _keys_for(self, alert: BaseAlert, why: str) -> RecipientKeys:
        if self.keys is None:
            raise EncryptionError([(
                "header",
                f"alert {alert.header.message_id} is encrypted ({why}) for its release_to, whose "
                "encryption keys are in the federation directory; none was given",
            )])
        return self.keys

    def check(self, alert: BaseAlert) -> bool:
        """Whether `alert` will be encrypted; EncryptionError now if it could not be.

        Cheap (no encryption): lets a publisher refuse a batch before it connects anywhere.
        """
        why = self.reason(alert)
        if why is None:
            return False
        recipient_keys(alert.header, self._keys_for(alert, why))
        return True

    def seal(self, alert: BaseAlert, signer: SigningKey, schemas: SchemaSet) -> SealedRecord:
        """The signed record of `alert`: encrypted if this policy says so, else plain."""
        why = self.reason(alert)
        if why is None:
            return seal(alert, signer, schemas)
        return seal_encrypted(alert, signer, self._keys_for(alert, why), schemas)


# -- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An encrypted alert whose producer signature verified; the body is still encrypted.

    Everything here is authenticated; the router routes on `routing_facts()` and delivers
    only to members in `recipients_with_keys(...)`.
    """

    meta: CloudEventMeta
    header: ClearHeader
    recipients: tuple[WrappedKey, ...]
    nonce: bytes
    key_commitment: bytes
    ciphertext: bytes = field(repr=False)
    associated_data: bytes = field(repr=False)
    value_size: int
    wire_version: WireVersion = WireVersion.V1_1

    @property
    def key_id(self) -> str:
        """Id of the producer's signing key."""
        return self.meta.key_id

    @property
    def producer(self) -> str:
        return self.header.producer

    @property
    def message_id(self) -> uuid.UUID:
        return self.header.message_id

    @property
    def alert_type(self) -> AlertType:
        return self.header.alert_type

    @property
    def created(self) -> datetime:
        return self.header.created

    @property
    def expires(self) -> datetime | None:
        return self.header.expires

    def routing_facts(self) -> RoutingFacts:
        return self.header.routing_facts()

    def wrapped_for(self, member: str) -> WrappedKey | None:
        return next((w for w in self.recipients if w.member == member), None)


def _wrapped(record: Mapping[str, Any]) -> WrappedKey:
    key_id = record["key_id"]
    if not KEY_ID_RE.fullmatch(key_id):
        raise SchemaError(f"wrapped key for {record['member']!r}: key id {key_id!r} is not 32 lowercase hex")
    return WrappedKey(record["member"], key_id, bytes(record["enc"]), bytes(record["sealed_key"]))


def _envelope(
    meta: CloudEventMeta, key: bytes | None, value: bytes, schemas: SchemaSet, empact_codes: EmpactCodeList
) -> VerifiedEnvelope:
    """Decode an authenticated wrapper value and check it against its envelope and its rules."""
    record = schemas.decode_encrypted(value)
    header = ClearHeader.from_avro(record["header"], empact_codes=empact_codes)
    _agree("ce_id", meta.id, str(header.message_id))
    _agree("ce_source", meta.producer, header.producer)
    _agree("ce_type", meta.alert_type, header.alert_type.value)
    _agree("ce_time", format_time(meta.time), format_time(header.created))
    if key != str(header.message_id).encode("ascii"):
        raise SchemaError("the record key of an encrypted alert must be its message id")
    recipients = tuple(_wrapped(w) for w in record["recipients"])
    named = [w.member for w in recipients]
    if named != list(header.release_to):
        raise SchemaError(
            f"wrapped keys are for {named}; an encrypted alert has one per member of release_to, "
            f"in order: {list(header.release_to)}"
        )
    ciphertext = bytes(record["ciphertext"])
    body = len(ciphertext) - TAG_SIZE
    if body <= 0 or body % PAD_BLOCK:
        raise SchemaError(f"ciphertext of {len(ciphertext)} bytes is not a padded alert plus a tag")
    return VerifiedEnvelope(
        meta=meta,
        header=header,
        recipients=recipients,
        nonce=bytes(record["nonce"]),
        key_commitment=bytes(record["key_commitment"]),
        ciphertext=ciphertext,
        associated_data=bytes(value[: len(value) - len(ciphertext)]),
        value_size=len(value),
    )


def _agree(header: str, claimed: str, body: str) -> None:
    if claimed != body:
        raise SignatureError(f"header {header} ({claimed}) disagrees with the clear header ({body})")


def unseal_any(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    resolver: KeyResolver,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
    *,
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
) -> VerifiedAlert | VerifiedEnvelope:
    """Verify a record exactly as `bus.core.sealing.unseal` does; never decrypts.

    A plain alert comes back as a VerifiedAlert, an encrypted one as a VerifiedEnvelope.
    """
    meta, version = authenticate(key, value, headers, resolver, accept_v1_0_until=accept_v1_0_until)
    assert value is not None  # authenticate refuses a null value
    with attributed_to(meta.producer):
        if schemas.is_encrypted(value):
            return replace(_envelope(meta, key, value, schemas, empact_codes), wire_version=version)
        return decode_verified(meta, value, schemas, empact_codes, version=version)


# -- decrypting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decryptor:
    """One member's decryption keys by key id: the current one and any rotated-out ones.

    An alert is wrapped for the key valid when it was created, so reading older alerts
    after a rotation needs the older key too.
    """

    member: str
    keys: Mapping[str, DecryptionKey]

    @classmethod
    def of(cls, keys: Iterable[DecryptionKey]) -> Decryptor:
        listed = list(keys)
        if not listed:
            raise BusError("a decryptor needs at least one decryption key")
        members = {k.member for k in listed}
        if len(members) != 1:
            raise BusError(f"decryption keys of several members given: {', '.join(sorted(members))}")
        return cls(listed[0].member, {k.key_id: k for k in listed})


def decrypt(
    envelope: VerifiedEnvelope, decryptor: Decryptor | None, schemas: SchemaSet, empact_codes: EmpactCodeList
) -> VerifiedAlert:
    """Open a verified encrypted alert with the member's private key(s).

    Raises DecryptionError: `encrypted` (no decryptor given), `not-a-recipient`,
    `no-decryption-key` or `decryption-failed`; SchemaError or SignatureError if what
    decrypts is not the alert the clear header states.
    """
    mid = envelope.message_id
    if decryptor is None:
        raise DecryptionError(
            f"alert {mid} is encrypted for {', '.join(envelope.header.release_to)}; "
            "give the member's decryption key to read it",
            RejectReason.ENCRYPTED, producer=envelope.producer,
        )
    member = decryptor.member
    wrapped = envelope.wrapped_for(member)
    if wrapped is None:
        raise DecryptionError(
            f"alert {mid} is encrypted for {', '.join(envelope.header.release_to)}; "
            f"{member} is not a named recipient and cannot read it",
            RejectReason.NOT_A_RECIPIENT, producer=envelope.producer,
        )
    private = decryptor.keys.get(wrapped.key_id)
    if private is None:
        raise DecryptionError(
            f"alert {mid}: {member}'s data key is wrapped for its encryption key {wrapped.key_id}, "
            f"but the key(s) given are {', '.join(sorted(decryptor.keys))} (pass the key valid at "
            f"{format_time(envelope.created)}; after a rotation that is the older one)",
            RejectReason.NO_DECRYPTION_KEY, producer=envelope.producer,
        )
    try:
        data_key = SUITE.decrypt(
            wrapped.enc + wrapped.sealed_key, private.key, info=wrap_info(mid, member, wrapped.key_id)
        )
    except (InvalidTag, ValueError):
        raise DecryptionError(
            f"alert {mid}: the data key wrapped for {member} (key {wrapped.key_id}) does not open: it "
            "was altered, or made for another member, key or alert",
            RejectReason.DECRYPTION_FAILED, producer=envelope.producer,
        ) from None
    if len(data_key) != DATA_KEY_SIZE or not hmac.compare_digest(key_commitment(data_key), envelope.key_commitment):
        raise DecryptionError(
            f"alert {mid}: the data key wrapped for {member} is not the one the producer committed to "
            "(its recipients would not all read the same alert)",
            RejectReason.DECRYPTION_FAILED, producer=envelope.producer,
        )
    try:
        padded = ChaCha20Poly1305(data_key).decrypt(
            envelope.nonce, envelope.ciphertext, envelope.associated_data
        )
    except InvalidTag:
        raise DecryptionError(
            f"alert {mid}: the ciphertext does not authenticate with its clear header, nonce and "
            "wrapped keys: it was altered, or moved from another alert",
            RejectReason.DECRYPTION_FAILED, producer=envelope.producer,
        ) from None
    verified = decode_verified(envelope.meta, unpad(padded), schemas, empact_codes,
                               version=envelope.wire_version, encrypted=True)
    inner = ClearHeader.of(verified.alert.header)
    if inner != envelope.header:
        differ = [n for n in ClearHeader.model_fields if getattr(inner, n) != getattr(envelope.header, n)]
        raise SignatureError(
            f"alert {mid}: the decrypted alert disagrees with the clear header in {', '.join(differ)}"
        )
    return replace(verified, value_size=envelope.value_size)


def unseal_and_decrypt(
    key: bytes | None,
    value: bytes,
    headers: Headers,
    resolver: KeyResolver,
    decryptor: Decryptor | None,
    schemas: SchemaSet,
    empact_codes: EmpactCodeList,
) -> VerifiedAlert:
    """What a reader does: verify, and decrypt if the alert is encrypted.

    Without a decryptor an encrypted alert raises DecryptionError with reason `encrypted`.
    """
    verified = unseal_any(key, value, headers, resolver, schemas, empact_codes)
    if isinstance(verified, VerifiedAlert):
        return verified
    return decrypt(verified, decryptor, schemas, empact_codes)


# -- routing -------------------------------------------------------------------------------


def recipients_with_keys(
    envelope: VerifiedEnvelope, directory: EncryptionKeyOwners | None = None
) -> frozenset[str]:
    """The members that hold a wrapped data key, i.e. could read this alert.

    With the directory, only wrapped keys for an encryption key of that very member,
    valid when the alert was created, count. The router delivers an encrypted alert to
    a partner only if the policy allows it *and* the partner is in this set.
    """
    return frozenset(
        w.member for w in envelope.recipients
        if directory is None or directory.encryption_key_owner(w.key_id, envelope.created) == w.member
    )
