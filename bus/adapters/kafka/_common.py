"""What both engines share: settings checks, deadlines, and telling "down" from "misconfigured".

Engine-neutral and client-free (no `kafka` / `confluent_kafka` import), so the
rules for honest errors are written once:

- settings that cannot work together fail before any connection is tried
  (`ProtocolMismatch`, `ConfigError`);
- "nobody is listening" is told apart from "somebody answered, but not the way
  we speak" with a plain TCP connect, because both clients report the two alike.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bus.config import KafkaSettings
from bus.errors import ConfigError, KafkaUnavailable, ProtocolMismatch


@dataclass(frozen=True)
class OperationContext:
    """What an operation was about, so that each engine's error mapping can name the resource
    an ACL denied (`NotAuthorized.resource`)."""

    action: str
    topic: str | None = None
    group: str | None = None
    transactional_id: str | None = None


KAFKA_LOG = logging.getLogger("bus.kafka")
"""Every client log line goes here at DEBUG: the console never sees client noise."""

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")

MAX_REQUEST_BYTES = 1_048_576
"""The producers' limit on one record (with headers), equal for both engines and just under
the broker's default `message.max.bytes` (1,048,588), so a record either client accepts
is one the broker accepts."""

T = TypeVar("T")


def check_settings(settings: KafkaSettings) -> None:
    """Refuse settings that cannot work, before any connection is tried.

    The usual mistake is SASL credentials with the default PLAINTEXT protocol: the
    client then never authenticates and the broker drops it, which both clients
    report as an unreachable cluster after a long wait.
    """
    protocol = settings.security_protocol
    credentials = settings.sasl_username is not None or settings.sasl_password is not None
    if credentials and protocol not in SASL_PROTOCOLS:
        who = f" for user {settings.sasl_username!r}" if settings.sasl_username else ""
        raise ProtocolMismatch(
            f"SASL credentials{who} were given, but the security protocol is {protocol}, which "
            "sends none: set --security-protocol SASL_PLAINTEXT or SASL_SSL "
            "(BUS_SECURITY_PROTOCOL), or drop the credentials")
    if protocol in SASL_PROTOCOLS and not (settings.sasl_username and settings.sasl_password):
        raise ConfigError(
            f"security protocol {protocol} needs a SASL username and password "
            "(--sasl-username/--sasl-password or BUS_SASL_USERNAME/BUS_SASL_PASSWORD)",
            [("sasl_username" if not settings.sasl_username else "sasl_password", "required")])
    if settings.ssl_cafile is not None and protocol not in TLS_PROTOCOLS:
        raise ProtocolMismatch(
            f"a CA file ({settings.ssl_cafile}) was given, but the security protocol is {protocol}, "
            "which does not use TLS: set --security-protocol SSL or SASL_SSL")
    if settings.ssl_cafile is not None and not settings.ssl_cafile.is_file():
        raise ConfigError(f"CA file {settings.ssl_cafile} does not exist",
                          [("ssl_cafile", "must be a readable PEM file")])
    if not bootstrap_addresses(settings):
        raise ConfigError("no bootstrap address given", [("bootstrap", "host:port[,host:port...]")])


def bootstrap_addresses(settings: KafkaSettings) -> list[tuple[str, int]]:
    """`host:port` pairs of the bootstrap list (IPv6 in brackets allowed)."""
    out: list[tuple[str, int]] = []
    for item in settings.bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"bootstrap address {item!r} is not host:port",
                              [("bootstrap", "host:port[,host:port...]")])
        out.append((host.strip("[]"), int(port)))
    return out


def listening(settings: KafkaSettings, timeout: float = 1.0) -> list[str]:
    """The bootstrap addresses that accept a TCP connection (no Kafka protocol spoken)."""
    up = []
    for host, port in bootstrap_addresses(settings):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                up.append(f"{host}:{port}")
        except OSError:
            continue
    return up


def check_reachable(settings: KafkaSettings, timeout: float = 1.0) -> None:
    """Raise `KafkaUnavailable` within `timeout` seconds when no bootstrap address accepts a TCP
    connection: for callers that must answer fast while Kafka is down (a connector's 503)."""
    if not listening(settings, timeout):
        raise unreachable(settings)


def unreachable(settings: KafkaSettings) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot reach Kafka at {settings.bootstrap}: nobody is listening there. Start a local "
        "broker with `bus broker start` or point --bootstrap / BUS_BOOTSTRAP at a running cluster")


def dropped(settings: KafkaSettings) -> ProtocolMismatch:
    """Somebody listens at the address but closed the connection before Kafka answered."""
    return ProtocolMismatch(
        f"{settings.bootstrap} accepts connections but closed them before answering as "
        f"{settings.security_protocol}: the listener probably expects "
        f"{'SASL or TLS' if settings.security_protocol == 'PLAINTEXT' else 'another security protocol'}"
        " (check --security-protocol and the port)")


def no_answer(settings: KafkaSettings) -> KafkaUnavailable | ProtocolMismatch:
    """The error for "no broker answered in time": down, or misconfigured?"""
    return dropped(settings) if listening(settings) else unreachable(settings)


@dataclass
class Deadline:
    """A point in time that several waits share (`timeout` seconds from now)."""

    timeout: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(0.0, self.start + self.timeout - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0


def poll_until(check: Callable[[], T | None], deadline: Deadline, step: Callable[[float], None],
               slice_s: float = 0.1) -> T | None:
    """Call `step(slice)` until `check()` gives a value or the deadline passes."""
    while True:
        value = check()
        if value is not None or deadline.expired():
            return value
        step(min(slice_s, deadline.remaining()))
