"""Connection settings shared by every client in the project.

Precedence: command-line flags > environment (`BUS_*`) > a YAML config file
(`--config` or `BUS_CONFIG`) > defaults. Secrets (SASL password) are
`SecretStr` so they never end up in logs or reprs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.errors import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
EngineName = Literal["confluent", "kafka-python"]


class KafkaSettings(BaseSettings):
    """How to reach and authenticate to the Kafka cluster."""

    # populate_by_name: the config file and flags say `engine`, the environment BUS_KAFKA_ENGINE.
    model_config = SettingsConfigDict(env_prefix="BUS_", extra="ignore", populate_by_name=True)

    bootstrap: str = DEFAULT_BOOTSTRAP
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "epa-bus"
    bootstrap_timeout_ms: int = 10000
    engine: EngineName = Field(
        default="confluent", validation_alias="BUS_KAFKA_ENGINE",
        description="Kafka client behind the port: confluent (default, librdkafka) or kafka-python.",
    )

    def describe(self) -> str:
        """One line for logs and CLI output; never includes the password."""
        who = f" as {self.sasl_username}" if self.sasl_username else ""
        return f"{self.bootstrap} ({self.security_protocol}{who})"


def load_settings(config_file: Path | None = None, **overrides: Any) -> KafkaSettings:
    """Build settings from a YAML file, the environment and explicit overrides (flags)."""
    file_values: dict[str, Any] = {}
    path = config_file or (Path(os.environ["BUS_CONFIG"]) if os.environ.get("BUS_CONFIG") else None)
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        file_values = dict(loaded.get("kafka", loaded))
    try:
        env_values = KafkaSettings().model_dump(exclude_unset=True)
        flags = {k: v for k, v in overrides.items() if v is not None}
        return KafkaSettings.model_validate({**file_values, **env_values, **flags})
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "kafka", e["msg"]) for e in exc.errors()]
        where = f" (config file {path})" if path is not None else ""
        raise ConfigError("invalid Kafka settings" + where + ": "
                          + "; ".join(f"{field}: {msg}" for field, msg in problems), problems) from None
