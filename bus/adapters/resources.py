"""Where the files the bus ships with are, in a checkout and in an installed wheel alike.

Users install the wheel, not the checkout, so nothing may find its data relative
to the source tree. The repository keeps its data where people look for it
(`schemas/avro/`, `schemas/codelists/`, `policies/`, `examples/alerts/`);
`bus/_data/` holds symbolic links to those folders, so they are package data of
`bus` (copied into the wheel and sdist as plain files) and an editable install
sees the very same files. This module is the one place that knows those names:
everything else asks it, through `importlib.resources`, which works whatever
the install looks like.

A `Traversable` can be read (`read_text`, `iterdir`) wherever the package lives;
code that must hand a real file to another process uses `as_path`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "Traversable",
    "as_path",
    "avro_schemas",
    "code_lists",
    "default_policy",
    "default_policy_cases",
    "edifact_samples",
    "example_alert",
    "example_alerts",
    "kafka_pom",
    "policies",
]


def _data(name: str) -> Traversable:
    return files("bus").joinpath("_data", name)


def avro_schemas() -> Traversable:
    """The folder of `*.avsc` files (repository: `schemas/avro/`)."""
    return _data("avro")


def code_lists() -> Traversable:
    """The folder of code list files such as `empact.yaml` (repository: `schemas/codelists/`)."""
    return _data("codelists")


def policies() -> Traversable:
    """The folder of shipped policies (repository: `policies/`)."""
    return _data("policies")


def default_policy() -> Traversable:
    """`policies/default.yaml`, the policy the demo and the image start with."""
    return policies().joinpath("default.yaml")


def default_policy_cases() -> Traversable:
    """`policies/default.cases.yaml`, the test cases of the default policy."""
    return policies().joinpath("default.cases.yaml")


def example_alerts() -> Traversable:
    """The folder of example alerts (repository: `examples/alerts/`)."""
    return _data("examples")


def example_alert(name: str) -> Traversable:
    """One example alert file, e.g. `suspicious-container.json` or `batch.jsonl`."""
    return example_alerts().joinpath(name)


def edifact_samples() -> Traversable:
    """The sample EDIFACT interchanges of the edifact connector."""
    return files("connectors.edifact").joinpath("samples")


def kafka_pom() -> Traversable:
    """The Maven project that fetches the official Apache Kafka jars."""
    return files("bus.adapters").joinpath("kafka-pom.xml")


@contextmanager
def as_path(resource: Traversable) -> Iterator[Path]:
    """A real file path for `resource` while the block runs (another process needs a file).

    For an ordinary install (a folder on disk) this is the file itself; for a zipped
    install `importlib.resources` extracts a temporary copy of a file.
    """
    with as_file(resource) as path:
        yield path
