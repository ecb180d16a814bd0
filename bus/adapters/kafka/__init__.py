"""The Kafka port and its engines. The only package that imports a Kafka client.

    engine = open_engine(settings)            # confluent by default, or kafka-python
    producer = engine.producer()
    producer.send("alerts.suspicious-container", value, key=key, headers=headers).result(10)

See `port.py` for the contract, `records.py` for the data that crosses it.
"""

from __future__ import annotations

from bus.adapters.kafka._common import check_reachable, check_settings
from bus.adapters.kafka.port import (
    Admin,
    Consumer,
    DeliveryFuture,
    Engine,
    GroupMetadata,
    Producer,
    RebalanceListener,
    TransactionalProducer,
)
from bus.adapters.kafka.records import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Capabilities,
    ClusterInfo,
    Delivery,
    Header,
    Headers,
    Polled,
    Record,
    TextHeaders,
    TopicInfo,
    TopicPartition,
    UndecodableRecord,
    text_headers,
    wire_headers,
)
from bus.config import KafkaSettings
from bus.errors import ConfigError

ENGINES = ("confluent", "kafka-python")
"""Engines selectable by settings (`--engine`, `BUS_KAFKA_ENGINE`, `engine:` in the config file)."""


def open_engine(settings: KafkaSettings) -> Engine:
    """The engine the settings name, connected with their security settings."""
    name = settings.engine
    if name == "confluent":
        from bus.adapters.kafka.confluent import ConfluentEngine

        return ConfluentEngine(settings)
    if name == "kafka-python":
        from bus.adapters.kafka.kafka_python import KafkaPythonEngine

        return KafkaPythonEngine(settings)
    raise ConfigError(f"unknown Kafka engine {name!r}: choose one of {', '.join(ENGINES)}")


__all__ = [
    "ENGINES",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "Admin",
    "Capabilities",
    "ClusterInfo",
    "Consumer",
    "Delivery",
    "DeliveryFuture",
    "Engine",
    "GroupMetadata",
    "Header",
    "Headers",
    "Polled",
    "Producer",
    "RebalanceListener",
    "Record",
    "TextHeaders",
    "TopicInfo",
    "TopicPartition",
    "TransactionalProducer",
    "UndecodableRecord",
    "check_reachable",
    "check_settings",
    "open_engine",
    "text_headers",
    "wire_headers",
]
