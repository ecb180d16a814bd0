"""Connector configuration: one YAML file, overridable from the environment.

Precedence is the bus-wide one: environment > YAML file > defaults. Connector
fields use `BUS_CONNECTOR_` with `__` between nested names
(`BUS_CONNECTOR_HEALTH__PORT=9500`); the `kafka:` section is read by
`bus.config.load_settings`, so the Kafka variables are the usual `BUS_*` ones
(`BUS_BOOTSTRAP`, `BUS_SASL_PASSWORD`, ...). Unknown keys are errors: a typo in
a deployed config must not silently fall back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bus.adapters.kafka import check_settings
from bus.config import KafkaSettings, load_settings
from bus.core.confidential import EncryptMode
from bus.core.models import MEMBER_ID_PATTERN
from bus.errors import BusError, ConnectorConfigError

ENV_PREFIX = "BUS_CONNECTOR_"
MEMBER_PATTERN = MEMBER_ID_PATTERN


class Section(BaseModel):
    """Base for nested config sections: unknown keys are typos, not extensions."""

    model_config = ConfigDict(extra="forbid")


class HealthSettings(Section):
    """Where `/healthz`, `/readyz` and `/metrics` are served (0 = any free port)."""

    host: str = "0.0.0.0"
    port: int = Field(default=9464, ge=0, le=65535)


class RetrySettings(Section):
    """Exponential backoff while Kafka is unavailable."""

    attempts: int = Field(default=5, ge=1, description="Publish attempts before giving up on a batch.")
    initial_backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.2, ge=0, le=1, description="Random +/- fraction of each delay.")


class PublishSettings(Section):
    """How hard to try before telling the upstream system that Kafka is down, and what to encrypt."""

    retry: RetrySettings = RetrySettings()
    connect_timeout_s: float = Field(default=5.0, gt=0, description="TCP probe and bootstrap timeout.")
    ack_timeout_s: float = Field(default=30.0, gt=0, description="Wait for acks=all per batch.")
    max_block_s: float = Field(default=10.0, gt=0, description="Wait for topic metadata in send().")
    create_topics: bool = Field(default=False, description="Create missing alert topics (dev only).")
    encrypt: EncryptMode = Field(
        default=EncryptMode.AUTO,
        description="auto: encrypt TLP:RED and H2/H3 alerts to their release_to; always; never (all in "
        "clear, readable by the bus operator). Encrypting needs `federation`.",
    )
    federation: Path | None = Field(
        default=None,
        description="Signed federation directory: the recipients' encryption keys (re-read on change).",
    )
    authority_pub: Path | None = Field(default=None, description="Public key of the authority that signs `federation`.")

    @model_validator(mode="after")
    def _federation_complete(self) -> PublishSettings:
        if (self.federation is None) != (self.authority_pub is None):
            raise ValueError("federation and authority_pub go together (the directory and who signs it)")
        if self.encrypt is EncryptMode.ALWAYS and self.federation is None:
            raise ValueError("encrypt: always needs federation and authority_pub (recipients' keys)")
        return self


class ReceiptSettings(Section):
    """Following the member's receipts (what the router did with each alert): `connectors.sdk.receipts`."""

    follow: bool = Field(default=True, description="Follow receipts.<member> when `publish.federation` is "
                         "given (receipts are verified with the router keys it lists).")
    lookback_s: float = Field(default=3600.0, ge=0, description="At start, read the receipts of this long ago.")
    cache: int = Field(default=10_000, ge=1, description="Message ids whose latest status is kept in memory.")


class ConnectorSettings(BaseSettings):
    """Fields every connector has; connectors subclass it and add one section."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    member: str = Field(pattern=MEMBER_PATTERN, description="Member id the connector signs as.")
    key_file: Path = Field(description="The member's Ed25519 private key (PEM, mode 0600).")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    health: HealthSettings = HealthSettings()
    publish: PublishSettings = PublishSettings()
    receipts: ReceiptSettings = ReceiptSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values; the environment must win over it.
        return env_settings, init_settings, file_secret_settings


S = TypeVar("S", bound=ConnectorSettings)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConnectorConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConnectorConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if not isinstance(loaded, dict):
        raise ConnectorConfigError(str(path), ["expected a mapping at the top level"])
    return loaded


def load_config(settings_class: type[S], path: Path | None) -> S:
    """Validate a connector config; raise ConnectorConfigError naming every bad field."""
    source = str(path) if path else "(environment only)"
    data = read_yaml(path) if path else {}
    kafka_section = data.pop("kafka", None)
    if kafka_section is not None and not isinstance(kafka_section, dict):
        raise ConnectorConfigError(source, ["kafka: expected a mapping"])
    try:
        settings = settings_class(**data)
    except ValidationError as exc:
        raise ConnectorConfigError(source, [_describe(err) for err in exc.errors()]) from None
    try:
        settings.kafka = load_settings(path) if path else KafkaSettings()
        check_settings(settings.kafka)  # SASL without credentials is a config error, not a retry
    except ValidationError as exc:
        raise ConnectorConfigError(source, [f"kafka.{_describe(err)}" for err in exc.errors()]) from None
    except BusError as exc:
        raise ConnectorConfigError(source, [f"kafka: {exc}"]) from None
    return settings


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "<config>"
    message = err["msg"]
    if err["type"] == "missing":
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        message += f" (set it in the file or in {env})"
    elif err["type"] == "extra_forbidden":
        message = "unknown setting (typo?)"
    return f"{loc}: {message}"


def env_or_none(name: str) -> str | None:
    """An environment value, treating empty as unset (compose files often pass `VAR=`)."""
    value = os.environ.get(name)
    return value or None
