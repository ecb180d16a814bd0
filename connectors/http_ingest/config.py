"""http-ingest settings: listener, limits and the systems allowed to post."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bus.core.models import AlertType
from connectors.sdk.config import ConnectorSettings, Section

MIN_TOKEN_CHARS = 32


class SystemToken(Section):
    """One agency system: its bearer token (hash, or an env var holding it) and what it may post."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="System name, for logs and metrics.")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                     description="Hex SHA-256 of the token (`bus connector token`).")
    token_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$",
                                  description="Environment variable holding the token itself.")
    alert_types: list[AlertType | Literal["*"]] = Field(
        min_length=1, description="Alert types this system may post; '*' for all.")

    @model_validator(mode="after")
    def _one_token_source(self) -> SystemToken:
        if (self.token_sha256 is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_sha256 or token_env")
        return self

    def allows(self, alert_type: AlertType) -> bool:
        return "*" in self.alert_types or alert_type in self.alert_types


class IngestSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Larger requests get 413.")
    max_batch: int = Field(500, ge=1, le=10000, description="Alerts per request.")
    dedupe_cache: int = Field(10000, ge=0, description="Recently acknowledged client message ids "
                                                       "answered from memory instead of re-published.")
    retry_after_s: int = Field(5, ge=1, description="Retry-After on 503.")
    systems: list[SystemToken] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> IngestSettings:
        names = [s.name for s in self.systems]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"system names must be unique: {', '.join(duplicates)}")
        return self


class HttpIngestSettings(ConnectorSettings):
    ingest: IngestSettings
