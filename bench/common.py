"""What every benchmark row shares: the machine, alerts with distinct keys, clocks, raw clients.

bench/ is not product code: the "raw" baselines here use confluent-kafka and kafka-python
directly, configured as the port's engines configure them (acks=all, idempotence,
murmur2 placement, the same linger), so a row's ratio isolates what the bus adds.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stdnum import iso6346

from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert, new_message_id, parse_alert
from bus.core.sealing import SealedRecord, seal

REPO = Path(__file__).resolve().parents[1]
PRODUCER = "NL-CUSTOMS"
ROUTER_ID = "EPA-ROUTER"
PARTNER = "EUROPOL"
FEED = "feed.bench-europol"
ALERT_TOPIC = "alerts.suspicious-container"
MAX_REQUEST_BYTES = 1024 * 1024


# -- the machine ------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    import confluent_kafka
    import kafka

    from bus.adapters.broker import KAFKA_VERSION

    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gib": _ram_gib(),
        "python": platform.python_version(), "kafka_broker": KAFKA_VERSION,
        "confluent_kafka": confluent_kafka.__version__, "librdkafka": confluent_kafka.libversion()[0],
        "kafka_python": kafka.__version__, "os": platform.platform(),
    }


# -- clocks -----------------------------------------------------------------------------------------


@dataclass
class Span:
    """Wall seconds and this process's CPU seconds (every thread, librdkafka's included)."""

    wall: float = 0.0
    cpu: float = 0.0

    def rate(self, n: int) -> float:
        return n / self.wall if self.wall > 0 else float("inf")

    def cpu_us(self, n: int) -> float:
        return self.cpu / n * 1e6 if n else 0.0


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured() -> Iterator[Span]:
    span = Span()
    wall, cpu = time.perf_counter(), process_cpu()
    try:
        yield span
    finally:
        span.wall, span.cpu = time.perf_counter() - wall, process_cpu() - cpu


def child_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- alerts -----------------------------------------------------------------------------------------


def container_number(i: int) -> str:
    """A valid ISO 6346 number per i: distinct keys spread the alerts over every partition."""
    body = f"BNCU{i % 1_000_000:06d}"
    return body + iso6346.calc_check_digit(body)


@dataclass
class AlertFactory:
    """Alerts like examples/alerts/suspicious-container.json, each with its own id and container."""

    producer: str = PRODUCER
    _base: BaseAlert | None = None
    _next: int = field(default=0)

    def base(self) -> BaseAlert:
        if self._base is None:
            doc = json.loads((REPO / "examples/alerts/suspicious-container.json").read_text())
            doc["header"] = {k: v for k, v in doc["header"].items() if k not in ("message_id", "created", "producer")}
            self._base = parse_alert(doc, empact_codes=default_empact_codes(), producer=self.producer)
        return self._base

    def make(self, n: int) -> list[BaseAlert]:
        """n alerts, validated once as a whole (the base) and varied by copy: ids, times, keys."""
        base = self.base()
        out = []
        for _ in range(n):
            header = base.header.model_copy(update={"message_id": new_message_id(), "created": datetime.now(UTC)})
            out.append(base.model_copy(update={"header": header, "container_number": container_number(self._next)}))
            self._next += 1
        return out


def seal_all(alerts: list[BaseAlert], signer: SigningKey) -> list[SealedRecord]:
    schemas = default_schemas()
    return [seal(a, signer, schemas) for a in alerts]


def new_signer() -> SigningKey:
    return SigningKey.generate(PRODUCER)


def tag() -> str:
    return uuid.uuid4().hex[:6]


# -- raw clients ------------------------------------------------------------------------------------


def raw_confluent_producer(bootstrap: str, **extra: Any) -> Any:
    """librdkafka configured as `ConfluentEngine.producer`: idempotent, acks=all, murmur2, linger 5 ms."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                     "partitioner": "murmur2_random", "message.max.bytes": MAX_REQUEST_BYTES,
                     "linger.ms": 5, **extra})


def raw_kafka_python_producer(bootstrap: str, **extra: Any) -> Any:
    """kafka-python configured as `KafkaPythonEngine.producer` (its default partitioner is murmur2)."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                         max_request_size=MAX_REQUEST_BYTES, linger_ms=5, **extra)


def blast(bootstrap: str, records: list[SealedRecord]) -> None:
    """Write pre-sealed records as fast as librdkafka takes them (keyed: murmur2 placement)."""
    producer = raw_confluent_producer(bootstrap)
    for r in records:
        while True:
            try:
                producer.produce(r.topic, r.value, r.key, headers=r.headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("records not acknowledged within 120 s")
