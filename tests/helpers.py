"""Small shared helpers for tests: example alerts, keys, reading topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert, parse_alert

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
    result = subprocess.run([*BUS, *args], capture_output=True, text=True, env=full_env,
                            timeout=timeout, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"bus {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def read_all(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every committed record currently on a topic (read_committed), in partition/offset order."""
    from bus.adapters.kafka_legacy import read_to_end

    return sorted(read_to_end(settings, topic), key=lambda m: (m.partition, m.offset))


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def assert_delivered_once(settings: KafkaSettings, feed: str, ids: Iterable[str], context: str = "") -> None:
    """Each message id in `ids` is on `feed` exactly once (other records there are ignored)."""
    wanted = set(ids)
    delivered = Counter(i for m in read_all(settings, feed) if (i := dict(m.headers)["ce_id"].decode()) in wanted)
    assert set(delivered) == wanted, f"lost {len(wanted - set(delivered))} {context}".rstrip()
    assert max(delivered.values()) == 1, "duplicated"
