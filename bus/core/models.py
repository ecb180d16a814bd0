"""Alert models: the one place where an alert's validity is decided.

Everything that reaches Kafka has passed these models, and everything read back
is re-validated by them (`from_avro`), so a rule added here protects both
directions. Identifiers are checked with their real check digits (stdnum) and
registries (pycountry) because a mistyped container number in a drug alert
sends officers to the wrong box. Models are frozen: a sealed alert must not
change after it was signed.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, NoReturn, Self, TypeVar

import pycountry
import uuid6
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from stdnum import imo, iso6346
from stdnum.exceptions import InvalidChecksum
from stdnum.exceptions import ValidationError as StdnumError

from bus.core.codelists import (
    EMPACT_CODES,
    EmpactCodeList,
    HandlingCode,
    InformationAssessment,
    SourceReliability,
    Tlp,
)
from bus.errors import AlertValidationError, UnknownCodeError, format_loc

__all__ = [
    "ALERT_MODELS",
    "MAX_ALERT_JSON_BYTES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_LIST_ITEMS",
    "MAX_SUMMARY_CHARS",
    "MAX_TEXT_CHARS",
    "AlertHeader",
    "AlertType",
    "BaseAlert",
    "CorruptionIndicatorAlert",
    "CorruptionIndicatorType",
    "EmpactPriority",
    "HandlingCode",
    "InformationAssessment",
    "OperationKind",
    "OperationNoticeAlert",
    "OperationStatus",
    "OrganisationType",
    "RiskIndicator",
    "SourceReliability",
    "SuspiciousContainerAlert",
    "Tlp",
    "new_message_id",
    "parse_alert",
    "utc_now",
]

# -- size limits: an alert is a message, not a document store ------------------------------

#: Whole alert as JSON (UTF-8). Well under the publisher's encoded-record limit.
MAX_ALERT_JSON_BYTES = 64 * 1024
MAX_LIST_ITEMS = 100
MAX_SUMMARY_CHARS = 500
MAX_DESCRIPTION_CHARS = 4000
#: Names, references and other one-line fields.
MAX_TEXT_CHARS = 200
MAX_REFERENCE_CHARS = 64


# -- enums ------------------------------------------------------------------------------------


class AlertType(StrEnum):
    """Alert types; each has its own topic (`alerts.<value>`) and Avro schema."""

    SUSPICIOUS_CONTAINER = "suspicious-container"
    CORRUPTION_INDICATOR = "corruption-indicator"
    OPERATION_NOTICE = "operation-notice"


class RiskIndicator(StrEnum):
    """Why a container is suspicious (customs risk-management vocabulary)."""

    ROUTE_ANOMALY = "route-anomaly"
    RIP_ON_RIP_OFF = "rip-on-rip-off"
    SEAL_TAMPERING = "seal-tampering"
    WEIGHT_DISCREPANCY = "weight-discrepancy"
    SCAN_ANOMALY = "scan-anomaly"
    DOCUMENTATION_MISMATCH = "documentation-mismatch"
    CONSIGNEE_UNKNOWN = "consignee-unknown"
    SHIPPER_UNKNOWN = "shipper-unknown"
    HIGH_RISK_ORIGIN = "high-risk-origin"
    COVER_LOAD = "cover-load"
    LATE_AMENDMENT = "late-amendment"
    DWELL_TIME_ANOMALY = "dwell-time-anomaly"
    CASH_PAYMENT = "cash-payment"
    INTELLIGENCE_HIT = "intelligence-hit"
    OTHER = "other"


class OrganisationType(StrEnum):
    TERMINAL_OPERATOR = "terminal-operator"
    SHIPPING_LINE = "shipping-line"
    PORT_AUTHORITY = "port-authority"
    CUSTOMS = "customs"
    LOGISTICS = "logistics"
    OTHER = "other"


class CorruptionIndicatorType(StrEnum):
    ACCESS_ANOMALY = "access-anomaly"
    CREDENTIAL_SHARING = "credential-sharing"
    UNUSUAL_CONTAINER_LOOKUPS = "unusual-container-lookups"
    RELEASE_CODE_MISUSE = "release-code-misuse"
    BRIBERY_APPROACH = "bribery-approach"
    INTIMIDATION = "intimidation"
    DATA_LEAK = "data-leak"
    OTHER = "other"


class OperationKind(StrEnum):
    CONTROLLED_DELIVERY = "controlled-delivery"
    JOINT_ACTION_DAY = "joint-action-day"
    DECONFLICTION_REQUEST = "deconfliction-request"


class OperationStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    CONCLUDED = "concluded"
    CANCELLED = "cancelled"


# -- field rules --------------------------------------------------------------------------------


def _fail(rule: str, message: str) -> PydanticCustomError:
    """A validation error whose type names the rule (the message is shown as is)."""
    return PydanticCustomError(rule, "{detail}", {"detail": message})


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


MEMBER_ID_PATTERN = r"^[A-Z0-9]+(-[A-Z0-9]+)*$"
"""Member ids: upper-case letters/digits in '-'-separated groups (NL-CUSTOMS). The one definition."""
MEMBER_ID_RE = re.compile(MEMBER_ID_PATTERN)
"""Use with `fullmatch`: `$` alone would accept a trailing newline ('NL-CUSTOMS\\n')."""
_OWNER_CODE = re.compile(r"[A-Z]{3}[UJZR]\d{7}")
_LOCODE = re.compile(r"[A-Z]{2}[A-Z2-9]{3}")
_HS_CODE = re.compile(r"\d{6,10}")
_SUBJECT = re.compile(r"PSN-[A-Z0-9]{8,64}")
_OPERATION_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{2,63}")


def _member_id(value: str) -> str:
    if len(value) > 64 or not MEMBER_ID_RE.fullmatch(value):
        raise _fail(
            "member_id",
            f"{_short(value)} is not a member id: 1-64 upper-case letters/digits in "
            "'-'-separated groups, e.g. 'NL-CUSTOMS'",
        )
    return value


_CANONICAL_CONTAINER = re.compile(r"[A-Z]{3}[UJZR][0-9]{7}")
"""A container number already in its compact form (ASCII only: `\\d` would take any digit)."""
_ISO6346_VALUES = {c: i for i, c in enumerate("0123456789A BCDEFGHIJK LMNOPQRSTU VWXYZ") if c != " "}
"""ISO 6346 letter values (multiples of 11 skipped), as stdnum's `calc_check_digit` counts them."""


def _iso6346_digit(number: str) -> str:
    """The check digit of a compact number's first 10 characters (owner code and serial)."""
    return str(sum(_ISO6346_VALUES[c] << i for i, c in enumerate(number[:10])) % 11 % 10)


def _container_number(value: str) -> str:
    # Every alert a router or reader re-validates names its container in the compact form
    # stdnum would return: accept that with its check digit directly (no compaction, which
    # stdnum does twice). Anything else, and any failure, goes through stdnum and is
    # explained as before (`_checked_container_number`).
    if _CANONICAL_CONTAINER.fullmatch(value) and _iso6346_digit(value) == value[10]:
        return value
    return _checked_container_number(value)


def _checked_container_number(value: str) -> str:
    """The reference rule: stdnum compacts and validates; a failure names the shape, then the digit."""
    try:
        number = iso6346.validate(value)
    except StdnumError as exc:
        number = iso6346.compact(value)
        _container_shape(value, number)
        if isinstance(exc, InvalidChecksum):
            expected = iso6346.calc_check_digit(number[:10])
            raise _fail(
                "iso6346", f"{number!r} fails the ISO 6346 check digit (expected {expected})"
            ) from None
        raise _fail("iso6346", f"{_short(value)} is not an ISO 6346 container number") from None
    _container_shape(value, number)
    return number


def _container_shape(value: str, number: str) -> None:
    if len(number) != 11 or not _OWNER_CODE.fullmatch(number):
        raise _fail(
            "iso6346",
            f"{_short(value)} is not an ISO 6346 container number: expected 3-letter owner "
            "code, category U/J/Z/R, 6-digit serial and check digit, e.g. 'CSQU3054383'",
        )


def _imo_number(value: str | int) -> str:
    # As `_container_number`: seven ASCII digits with their check digit are what stdnum
    # would return; anything else goes through stdnum (`_checked_imo_number`).
    if type(value) is str and len(value) == 7 and value.isascii() and value.isdigit() \
            and _imo_digit(value) == value[6]:
        return value
    return _checked_imo_number(value)


def _imo_digit(number: str) -> str:
    """The IMO check digit of the first six digits (weights 7 down to 2)."""
    return str(sum(int(n) * (7 - i) for i, n in enumerate(number[:6])) % 10)


def _checked_imo_number(value: str | int) -> str:
    """The reference rule: stdnum compacts and validates; a failure names the shape, then the digit."""
    try:
        number = imo.validate(str(value))
    except StdnumError as exc:
        number = imo.compact(str(value))
        _imo_shape(value, number)
        if isinstance(exc, InvalidChecksum):
            expected = imo.calc_check_digit(number[:6])
            raise _fail(
                "imo", f"'IMO {number}' fails the IMO check digit (expected {expected})"
            ) from None
        raise _fail("imo", f"{_short(str(value))} is not an IMO ship number") from None
    _imo_shape(value, number)
    return number


def _imo_shape(value: str | int, number: str) -> None:
    if not (len(number) == 7 and number.isascii() and number.isdigit()):
        raise _fail(
            "imo",
            f"{_short(str(value))} is not an IMO ship number: 7 digits, optionally prefixed "
            "'IMO', e.g. 'IMO 9074729'",
        )


@functools.cache
def _is_country(code: str) -> bool:
    """Cached (at most 26 * 26 entries: callers pass two ASCII letters). Every alert names a
    few countries and ports, every reader and the router re-validate each alert, and
    pycountry's lookup cost more than the rest of the check."""
    try:
        return pycountry.countries.get(alpha_2=code) is not None
    except KeyError:  # older pycountry raises instead of returning None
        return False


def _country(value: str) -> str:
    code = value.strip().upper()
    if not (len(code) == 2 and code.isascii() and code.isalpha() and _is_country(code)):
        raise _fail("iso3166", f"{_short(value)} is not an ISO 3166-1 alpha-2 country code")
    return code


def _locode(value: str) -> str:
    code = value.upper().replace(" ", "")
    if not _LOCODE.fullmatch(code):
        raise _fail(
            "unlocode",
            f"{_short(value)} is not a UN/LOCODE: expected a 2-letter country code and 3 "
            "characters A-Z/2-9, e.g. 'NLRTM'",
        )
    if not _is_country(code[:2]):
        raise _fail(
            "unlocode",
            f"{code!r} is not a UN/LOCODE: {code[:2]!r} is not an ISO 3166-1 country code",
        )
    return code


def _hs_code(value: str) -> str:
    code = value.replace(".", "").replace(" ", "")
    if not _HS_CODE.fullmatch(code):
        raise _fail(
            "hs_code", f"{_short(value)} is not an HS/CN/TARIC code: expected 6 to 10 digits"
        )
    return code


def _subject_reference(value: str) -> str:
    # The value is never echoed: if it is a name, it must not end up in logs either.
    if any(c.isspace() or c.islower() for c in value):
        raise _fail(
            "pseudonymised",
            "must be a pseudonymised reference such as 'PSN-7K2M9QXD', never a person's name "
            "(value has whitespace or lower-case letters; not shown)",
        )
    if not _SUBJECT.fullmatch(value):
        raise _fail(
            "pseudonymised",
            "must be a pseudonymised reference matching ^PSN-[A-Z0-9]{8,64}$ (value not shown)",
        )
    return value


def _operation_id(value: str) -> str:
    if not _OPERATION_ID.fullmatch(value):
        raise _fail(
            "operation_id",
            f"{_short(value)} is not an operation id: 3-64 upper-case letters, digits and '-', "
            "starting with a letter or digit, e.g. 'NL-2026-CD-0042'",
        )
    return value


def _utc_millis(value: datetime) -> datetime:
    """Aware only (naive times are ambiguous across the EU), UTC, Avro millisecond precision."""
    if type(value) is datetime and value.tzinfo is UTC and value.microsecond % 1000 == 0:
        return value  # what every decoded Avro time is already: nothing to convert or truncate
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(
            "timezone",
            "datetime has no timezone; add an offset such as 'Z' or '+01:00' "
            "(e.g. '2026-03-01T08:00:00Z')",
        )
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 once in UTC
        raise _fail("datetime_range", "datetime is out of range once converted to UTC (years 1-9999)") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# Unicode category Cc is exactly C0 + DEL + C1; a regex scans far faster than per-char lookups.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _text(*, multiline: bool) -> Callable[[str], str]:
    control = _CONTROL_BUT_WHITESPACE if multiline else _CONTROL

    def check(value: str) -> str:
        if not value or value.isspace():  # `not value.strip()` without copying the text
            raise _fail("blank", "must not be blank")
        if control.search(value):
            raise _fail("control_characters", "must not contain control characters")
        return value

    return check


def _unique(items: list[Any]) -> list[Any]:
    if len(items) < 2:
        return items
    seen: set[Hashable] = set()
    for item in items:
        if item in seen:
            raise _fail("unique", f"duplicate entry {str(item)!r}")
        seen.add(item)
    return items


def _int_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _message_id(value: uuid.UUID) -> uuid.UUID:
    if value.version != 7 or value.variant != uuid.RFC_4122:
        raise _fail(
            "uuid_version",
            f"message_id must be a UUIDv7 (time-ordered, RFC 9562), got version {value.version}",
        )
    # a plain stdlib UUID, whatever subclass came in (a decoded alert's already is one)
    return value if type(value) is uuid.UUID else uuid.UUID(int=value.int)


def new_message_id() -> uuid.UUID:
    """A fresh UUIDv7 as a plain `uuid.UUID` (uuid6's subclass compares but pickles oddly)."""
    return uuid.UUID(int=uuid6.uuid7().int)


def utc_now() -> datetime:
    """Now, in UTC, truncated to what Avro timestamp-millis can carry."""
    return _utc_millis(datetime.now(UTC))


def _remembered(check: Callable[[str], str], longest: int) -> Callable[[str], str]:
    """`check`, its result for each short value kept once it passed: alert after alert names
    the same few members, countries and ports, and every reader and the router re-validate
    each one. A refused value raises and is never kept; a value over `longest` characters
    (it can only be refused, or padded with spaces) is checked every time and never kept."""
    cached = functools.lru_cache(maxsize=1024)(check)

    def remembered(value: str) -> str:
        return cached(value) if len(value) <= longest else check(value)

    return remembered


MemberId = Annotated[str, AfterValidator(_remembered(_member_id, 64))]
ContainerNumber = Annotated[str, AfterValidator(_container_number)]
ImoNumber = Annotated[str, BeforeValidator(_int_to_str), AfterValidator(_imo_number)]
CountryCode = Annotated[str, AfterValidator(_remembered(_country, 8))]
UnLocode = Annotated[str, AfterValidator(_remembered(_locode, 12))]
HsCode = Annotated[str, BeforeValidator(_int_to_str), AfterValidator(_hs_code)]
SubjectReference = Annotated[str, AfterValidator(_subject_reference)]
OperationId = Annotated[str, AfterValidator(_operation_id)]
UtcDatetime = Annotated[datetime, AfterValidator(_utc_millis)]
MessageId = Annotated[uuid.UUID, AfterValidator(_message_id)]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Reference = Annotated[
    str, Field(min_length=1, max_length=MAX_REFERENCE_CHARS), AfterValidator(_text(multiline=False))
]
Text = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_text(multiline=False))
]
Summary = Annotated[
    str, Field(min_length=1, max_length=MAX_SUMMARY_CHARS), AfterValidator(_text(multiline=True))
]
Description = Annotated[
    str,
    Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS),
    AfterValidator(_text(multiline=True)),
]


_T = TypeVar("_T")
#: At most MAX_LIST_ITEMS entries and no duplicates (compared after normalisation).
UniqueList = Annotated[list[_T], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_unique)]


# -- models -------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # inputs may hold names (subject_reference); never copy them into error strings
        hide_input_in_errors=True,
    )


def _empact_codes(info: ValidationInfo) -> EmpactCodeList:
    """The code list the caller passed in the validation context (the core reads no file).

    Without one an EMPACT priority is refused rather than accepted unchecked.
    """
    codes = (info.context or {}).get(EMPACT_CODES)
    if not isinstance(codes, EmpactCodeList):
        raise _fail(
            "empact",
            "cannot check an EMPACT priority without the EMPACT code list: validate with "
            "parse_alert(..., empact_codes=...) or context={'empact_codes': ...}",
        )
    return codes


class EmpactPriority(_Model):
    """An EMPACT priority, checked against the versioned code list (not an enum)."""

    # The code list comes from the validation context (`EMPACT_CODES`), put there by
    # `parse_alert` and `from_avro`; this docstring is published in the OpenAPI document.

    cycle: str = Field(max_length=9, description="Policy cycle, e.g. '2026-2029'.")
    code: str = Field(max_length=32, description="Priority code in that cycle, e.g. 'CCH'.")

    @field_validator("cycle")
    @classmethod
    def _known_cycle(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        try:
            _empact_codes(info).lookup_cycle(value)
        except UnknownCodeError as exc:
            raise _fail("empact", str(exc)) from None
        return value

    @field_validator("code")
    @classmethod
    def _known_code(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().upper()
        cycle = info.data.get("cycle")
        if cycle is None:  # the cycle already failed; that error says enough
            return value
        codes = _empact_codes(info)
        try:
            codes.lookup_code(codes.lookup_cycle(cycle), value)
        except UnknownCodeError as exc:
            raise _fail("empact", str(exc)) from None
        return value


class AlertHeader(_Model):
    """What every alert carries: identity, provenance, handling, evaluation, scope."""

    message_id: MessageId = Field(default_factory=new_message_id)
    alert_type: AlertType
    producer: MemberId
    created: UtcDatetime = Field(default_factory=utc_now)
    expires: UtcDatetime | None = None
    tlp: Tlp
    handling_codes: UniqueList[HandlingCode] = Field(default_factory=list)
    h3_conditions: Description | None = Field(default=None, validate_default=True)
    source_reliability: SourceReliability
    information_assessment: InformationAssessment
    empact_priority: EmpactPriority | None = None
    release_to: UniqueList[MemberId] = Field(default_factory=list)
    countries: UniqueList[CountryCode] = Field(default_factory=list)
    ports: UniqueList[UnLocode] = Field(default_factory=list)
    related: UniqueList[uuid.UUID] = Field(default_factory=list)
    summary: Summary

    @field_validator("expires")
    @classmethod
    def _expires_after_created(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        created = info.data.get("created")
        if value is not None and created is not None and value <= created:
            raise _fail(
                "expires_after_created",
                f"expires ({value.isoformat()}) must be after created ({created.isoformat()})",
            )
        return value

    @field_validator("h3_conditions")
    @classmethod
    def _h3_conditions_iff_h3(cls, value: str | None, info: ValidationInfo) -> str | None:
        codes = info.data.get("handling_codes")
        if codes is None:  # handling_codes itself is invalid
            return value
        if HandlingCode.H3 in codes and value is None:
            raise _fail("h3_conditions", "required when handling code H3 is present")
        if HandlingCode.H3 not in codes and value is not None:
            raise _fail("h3_conditions", "only allowed with handling code H3")
        return value


#: Types whose values go into an Avro record as they are (exact types: an enum deriving
#: from str is not one of them). Checked first because almost every field holds one.
_AVRO_AS_IS: frozenset[type] = frozenset({str, int, float, bool, bytes, type(None), uuid.UUID, datetime})


def _enum_to_avro(value: Any) -> Any:
    """Avro symbols are the enum member names (Avro forbids '-', '+' and leading digits)."""
    if type(value) in _AVRO_AS_IS:
        return value
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, list):
        return [v if type(v) in _AVRO_AS_IS else _enum_to_avro(v) for v in value]
    return value


def _enum_from_avro(enum: type[Enum], value: Any) -> Any:
    if isinstance(value, list):
        return [enum[v] for v in value]
    return enum[value]


class BaseAlert(_Model):
    """Header plus a type-specific body; subclasses set `ALERT_TYPE` and the body fields."""

    ALERT_TYPE: ClassVar[AlertType]
    #: Full Avro name of the record schema (`schemas/avro/<alert-type>.avsc`).
    AVRO_NAME: ClassVar[str]
    #: Body fields holding enums (or lists of enums), converted to/from Avro symbols.
    _AVRO_ENUMS: ClassVar[Mapping[str, type[Enum]]] = {}
    _HEADER_AVRO_ENUMS: ClassVar[Mapping[str, type[Enum]]] = {
        "alert_type": AlertType,
        "tlp": Tlp,
        "handling_codes": HandlingCode,
        "source_reliability": SourceReliability,
        "information_assessment": InformationAssessment,
    }

    header: AlertHeader

    @model_validator(mode="before")
    @classmethod
    def _default_alert_type(cls, data: Any) -> Any:
        """Building `SuspiciousContainerAlert(header={...})` need not repeat the type."""
        alert_type = getattr(cls, "ALERT_TYPE", None)
        if alert_type is not None and isinstance(data, dict):
            header = data.get("header")
            if isinstance(header, dict) and header.get("alert_type") is None:
                return {**data, "header": {**header, "alert_type": alert_type}}
        return data

    @field_validator("header")
    @classmethod
    def _header_matches_type(cls, header: AlertHeader) -> AlertHeader:
        alert_type = getattr(cls, "ALERT_TYPE", None)
        if alert_type is not None and header.alert_type != alert_type:
            raise _fail(
                "alert_type",
                f"header.alert_type is {header.alert_type.value!r} but this is a "
                f"{alert_type.value} alert",
            )
        return header

    @property
    def alert_type(self) -> AlertType:
        return self.ALERT_TYPE

    def partition_key(self) -> str:
        """Kafka key: alerts about the same thing land on one partition, in order."""
        raise NotImplementedError

    def to_avro(self) -> dict[str, Any]:
        """A record for `schemas/avro/<alert-type>.avsc` (enums as symbols, UUIDs, datetimes)."""
        # A model's __dict__ holds exactly its fields (the models forbid extras), so one pass
        # over it replaces a getattr per declared field.
        # Most values go as they are: the type test inline spares a call per field, and the
        # EMPACT priority (two str fields) is copied rather than dumped by pydantic.
        as_is = _AVRO_AS_IS
        header = {name: value if type(value) in as_is else _enum_to_avro(value)
                  for name, value in self.header.__dict__.items()}
        priority = self.header.empact_priority
        if priority is not None:
            header["empact_priority"] = dict(priority.__dict__)
        record: dict[str, Any] = {"header": header}
        for name, value in self.__dict__.items():
            if name != "header":
                record[name] = value if type(value) in as_is else _enum_to_avro(value)
        return record

    @classmethod
    def from_avro(cls, record: Mapping[str, Any], *, empact_codes: EmpactCodeList) -> Self:
        """Re-validate a decoded record; raises `AlertValidationError` like `parse_alert`."""
        try:
            header = dict(record["header"])
            for name, enum in cls._HEADER_AVRO_ENUMS.items():
                if name in header:
                    header[name] = _enum_from_avro(enum, header[name])
            data = {**record, "header": header}
            for name, enum in cls._AVRO_ENUMS.items():
                if name in data:
                    data[name] = _enum_from_avro(enum, data[name])
        except (KeyError, TypeError) as exc:
            raise AlertValidationError(
                [("alert", f"not a {cls.ALERT_TYPE.value} Avro record: {exc!r}")]
            ) from None
        try:
            return cls.model_validate(data, context={EMPACT_CODES: empact_codes})
        except ValidationError as exc:
            raise AlertValidationError(_errors(exc)) from None


class SuspiciousContainerAlert(BaseAlert):
    """A container suspected of carrying drugs; keyed by container number."""

    ALERT_TYPE: ClassVar[AlertType] = AlertType.SUSPICIOUS_CONTAINER
    AVRO_NAME: ClassVar[str] = "eu.epa.bus.SuspiciousContainerAlert"
    _AVRO_ENUMS: ClassVar[Mapping[str, type[Enum]]] = {"risk_indicators": RiskIndicator}

    container_number: ContainerNumber
    bill_of_lading: Reference | None = None
    vessel_imo: ImoNumber | None = None
    vessel_name: Text | None = None
    voyage: Reference | None = None
    port_of_loading: UnLocode | None = None
    port_of_discharge: UnLocode | None = None
    transshipment_ports: UniqueList[UnLocode] = Field(default_factory=list)
    shipper: Text | None = None
    consignee: Text | None = None
    declared_goods: Summary | None = None
    hs_code: HsCode | None = None
    seal_numbers: UniqueList[Reference] = Field(default_factory=list)
    risk_indicators: UniqueList[RiskIndicator] = Field(default_factory=list)
    risk_score: Score | None = None
    scan_reference: Reference | None = None
    eta: UtcDatetime | None = None
    terminal: Text | None = None

    def partition_key(self) -> str:
        return self.container_number


class CorruptionIndicatorAlert(BaseAlert):
    """An insider-corruption indicator about a pseudonymised subject; keyed by subject."""

    ALERT_TYPE: ClassVar[AlertType] = AlertType.CORRUPTION_INDICATOR
    AVRO_NAME: ClassVar[str] = "eu.epa.bus.CorruptionIndicatorAlert"
    _AVRO_ENUMS: ClassVar[Mapping[str, type[Enum]]] = {
        "organisation_type": OrganisationType,
        "indicator_type": CorruptionIndicatorType,
    }

    port: UnLocode
    organisation_type: OrganisationType
    subject_reference: SubjectReference
    indicator_type: CorruptionIndicatorType
    observed_at: UtcDatetime
    description: Description
    confidence: Score | None = None
    linked_containers: UniqueList[ContainerNumber] = Field(default_factory=list)

    def partition_key(self) -> str:
        return self.subject_reference


class OperationNoticeAlert(BaseAlert):
    """A controlled delivery, action day or deconfliction request; keyed by operation id."""

    ALERT_TYPE: ClassVar[AlertType] = AlertType.OPERATION_NOTICE
    AVRO_NAME: ClassVar[str] = "eu.epa.bus.OperationNoticeAlert"
    _AVRO_ENUMS: ClassVar[Mapping[str, type[Enum]]] = {
        "kind": OperationKind,
        "status": OperationStatus,
    }

    operation_id: OperationId
    codename: Annotated[Text, Field(max_length=MAX_REFERENCE_CHARS)] | None = None
    lead_agency: MemberId
    participating_agencies: UniqueList[MemberId] = Field(default_factory=list)
    kind: OperationKind
    ports: UniqueList[UnLocode] = Field(default_factory=list)
    containers: UniqueList[ContainerNumber] = Field(default_factory=list)
    vessels: UniqueList[ImoNumber] = Field(default_factory=list)
    window_start: UtcDatetime
    window_end: UtcDatetime | None = None
    status: OperationStatus = OperationStatus.PLANNED
    contact: Text | None = None

    @field_validator("window_end")
    @classmethod
    def _end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("window_start")
        if value is not None and start is not None and value <= start:
            raise _fail(
                "window_order",
                f"window_end ({value.isoformat()}) must be after "
                f"window_start ({start.isoformat()})",
            )
        return value

    def partition_key(self) -> str:
        return self.operation_id


ALERT_MODELS: dict[AlertType, type[BaseAlert]] = {
    model.ALERT_TYPE: model
    for model in (SuspiciousContainerAlert, CorruptionIndicatorAlert, OperationNoticeAlert)
}


# -- parsing ------------------------------------------------------------------------------------


def _reject(path: str, message: str) -> NoReturn:
    raise AlertValidationError([(path, message)])


def _valid_types() -> str:
    return ", ".join(t.value for t in AlertType)


def _alert_type(value: AlertType | str) -> AlertType | None:
    try:
        return AlertType(value)
    except ValueError:
        return None


def parse_alert(
    data: Mapping[str, Any],
    *,
    empact_codes: EmpactCodeList,
    alert_type: AlertType | str | None = None,
    producer: str | None = None,
) -> BaseAlert:
    """Validate the JSON shape `{"header": {...}, ...body}` into the right alert model.

    `empact_codes` is the EMPACT code list an `empact_priority` is checked against
    (`bus.adapters.schema_files.default_empact_codes()` gives the shipped one).

    `alert_type` and `producer` fill the header when it lacks them (the type and member an
    alert is published as: `bus publish --type --member`, the connector's member, the
    http-ingest path) and must agree with it when it has them: a file claiming another
    producer is a mistake or an impersonation attempt, never silently overridden. The
    messages name fields and values only, never a caller's flags: every caller shows them.
    """
    if not isinstance(data, Mapping):
        _reject("alert", f"expected a JSON object, got {type(data).__name__}")
    size = len(json.dumps(data, ensure_ascii=False, default=str).encode("utf-8"))
    if size > MAX_ALERT_JSON_BYTES:
        _reject("alert", f"alert is {size} bytes as JSON; at most {MAX_ALERT_JSON_BYTES} allowed")
    header = data.get("header")
    if not isinstance(header, Mapping):
        problem = "required field is missing" if header is None else "expected a JSON object"
        _reject("header", problem)
    header = dict(header)

    wanted: AlertType | None = None
    if alert_type is not None:
        wanted = _alert_type(alert_type)
        if wanted is None:
            _reject(
                "alert_type", f"unknown alert type {alert_type!r}; valid types: {_valid_types()}"
            )
    declared = header.get("alert_type")
    declared_type: AlertType | None
    if declared is None:
        if wanted is None:
            _reject("header.alert_type", f"required field is missing: one of {_valid_types()}")
        declared_type = wanted
    else:
        declared_type = _alert_type(declared) if isinstance(declared, str) else None
        if declared_type is None:
            _reject(
                "header.alert_type",
                f"unknown alert type {declared!r}; valid types: {_valid_types()}",
            )
        if wanted is not None and declared_type != wanted:
            _reject(
                "header.alert_type",
                f"{declared_type.value!r} does not match the alert type being published, {wanted.value!r}",
            )
    header["alert_type"] = declared_type

    errors: list[tuple[str, str]] = []
    if header.get("producer") is None:
        if producer is not None:
            header["producer"] = producer
    elif producer is not None and header["producer"] != producer:
        errors.append(
            ("header.producer",
             f"{_short(str(header['producer']))} does not match the publishing member {producer!r}")
        )

    model = ALERT_MODELS[declared_type]
    try:
        alert = model.model_validate({**data, "header": header}, context={EMPACT_CODES: empact_codes})
    except ValidationError as exc:
        errors += _errors(exc)
    if errors:
        raise AlertValidationError(errors)
    return alert


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's messages, reworded where they would not say which rule failed."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (not in the schema; check the spelling)"
    if kind == "string_too_long":
        return f"too long: at most {ctx.get('max_length')} characters (size limit)"
    if kind == "too_long":
        return f"too many items: at most {ctx.get('max_length')} (size limit)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "enum":
        return f"not a valid value: expected {ctx.get('expected')}"
    if kind in ("uuid_parsing", "uuid_type"):
        return "not a valid UUID"
    if kind in ("datetime_parsing", "datetime_from_date_parsing", "datetime_type"):
        return "not an ISO 8601 datetime (e.g. '2026-03-01T08:00:00Z')"
    return str(error["msg"])


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(format_loc(e["loc"], whole="alert"), _message(e)) for e in exc.errors(include_url=False)]
