"""The connector SDK: what every connector needs and none should re-invent."""

from bus.errors import ConnectorConfigError as ConfigError  # the SDK's name for it, kept for connector authors
from connectors.sdk.config import ConnectorSettings, load_config
from connectors.sdk.publishing import ReliablePublisher
from connectors.sdk.registry import available, load_connector
from connectors.sdk.runtime import Connector, Runtime, Services

__all__ = [
    "ConfigError",
    "Connector",
    "ConnectorSettings",
    "ReliablePublisher",
    "Runtime",
    "Services",
    "available",
    "load_config",
    "load_connector",
]
