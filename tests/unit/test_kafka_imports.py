"""Only the Kafka port (bus/adapters/kafka/) may import a Kafka client."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENTS = ("kafka", "confluent_kafka")

def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _client_importers() -> set[str]:
    out = set()
    for root in ("bus", "connectors"):
        for path in (REPO / root).rglob("*.py"):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith("bus/adapters/kafka/"):
                continue
            if any(m.split(".")[0] in CLIENTS for m in _imported_modules(path)):
                out.add(relative)
    return out


def test_no_module_outside_the_port_imports_a_kafka_client() -> None:
    """No exceptions: the benchmarks' raw baselines live in bench/, which is not product code."""
    assert _client_importers() == set()


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from confluent_kafka import Producer\n")
    assert "confluent_kafka" in _imported_modules(sample)
