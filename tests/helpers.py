"""Small shared helpers for tests: example alerts, keys, reading topics."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from bus.adapters.kafka import Polled, Record, wire_headers
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.composition import Bus
from bus.config import KafkaSettings
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert, parse_alert
from bus.core.sealing import SealedRecord
from bus.core.topology import TopicSpec

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "alerts"
BUS = [sys.executable, "-m", "bus"]
#: The shipped schemas and EMPACT code list, as every service loads them.
SCHEMAS = default_schemas()
CODES = default_empact_codes()


def example(name: str, producer: str = "NL-CUSTOMS", **header: Any) -> BaseAlert:
    """A fresh copy of an example alert (new message id unless given)."""
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    data["header"] = {k: v for k, v in data["header"].items() if k not in ("message_id", "created", "producer")}
    data["header"].update(header)
    return parse_alert(data, empact_codes=CODES, producer=producer)


def keyring_for(*signers: SigningKey) -> Keyring:
    ring = Keyring()
    for s in signers:
        ring.add(s.member, s.public)
    return ring


def run_bus(*args: str, settings: KafkaSettings | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    if settings is not None:
        full_env["BUS_BOOTSTRAP"] = settings.bootstrap
        full_env["BUS_KAFKA_ENGINE"] = settings.engine
    result = subprocess.run([*BUS, *args], capture_output=True, text=True, env=full_env,
                            timeout=timeout, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"bus {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def read_all(settings: KafkaSettings, topic: str, timeout: float = 60.0) -> list[Polled]:
    """Every committed record currently on a topic (read_committed), in partition/offset order,
    as the Kafka port gives them: `Record`s with bytes header names (`dict(r.headers)[b"ce_id"]`),
    and an `UndecodableRecord` where the client could not decode one."""
    return Bus(settings).read_to_end(topic, timeout=timeout)


def publish_raw(settings: KafkaSettings, records: Iterable[SealedRecord], *, partition: int | None = None) -> None:
    """Produce sealed (or forged) records as they are, bypassing the publisher's checks."""
    producer = Bus(settings).engine.producer()
    try:
        futures = [producer.send(r.topic, r.value, key=r.key, headers=wire_headers(r.headers), partition=partition)
                   for r in records]
        for future in futures:
            future.result(30)
    finally:
        producer.close()


def create_topic(settings: KafkaSettings, name: str, partitions: int = 1,
                 config: tuple[tuple[str, str], ...] = ()) -> str:
    """A scratch topic for one test (replication 1)."""
    Bus(settings).ensure_topics([TopicSpec(name, partitions, 1, config)])
    return name


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class StreamLines:
    """A child process's output stream, read line by line on a thread, so that waiting for a line
    can time out: a bare `readline()` blocks past any deadline while the child prints nothing."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self._ended = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def _next(self, deadline: float) -> str | None:
        line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        if line is None:
            self._ended = True
        else:
            self.lines.append(line)
        return line

    def wait_for(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line from now on for which `match` is true; fail naming `what` on timeout or
        when the stream ends first."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            try:
                line = self._next(deadline)
            except queue.Empty:
                break
            if line is not None and match(line):
                return line
        tail = "".join(self.lines[-20:])
        ended = "the stream ended" if self._ended else f"timed out after {timeout:.0f}s"
        raise AssertionError(f"{ended} waiting for {what}; last lines:\n{tail}")

    def text(self, timeout: float = 60.0) -> str:
        """Everything the stream carried, once it has ended (the child exited)."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            self._next(deadline)
        return "".join(self.lines)


def assert_delivered_once(settings: KafkaSettings, feed: str, ids: Iterable[str], context: str = "") -> None:
    """Each message id in `ids` is on `feed` exactly once (other records there are ignored)."""
    wanted = set(ids)
    delivered = Counter(i for m in read_all(settings, feed)
                        if isinstance(m, Record) and (i := dict(m.headers)[b"ce_id"].decode()) in wanted)
    assert set(delivered) == wanted, f"lost {len(wanted - set(delivered))} {context}".rstrip()
    assert max(delivered.values()) == 1, "duplicated"
