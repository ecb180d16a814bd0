"""Every exception class of the bus lives in bus/errors.py: one tree a caller can read in one place.

The test reads the source (it imports nothing) so a class defined in a module no test imports is
still found. A class counts as an exception when one of its bases is a built-in exception or a
class already known to be one, by the base's last dotted name (`errors.BusError` -> `BusError`).
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bus", "connectors")
HOME = ROOT / "bus" / "errors.py"

BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8")
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def exception_classes(sources: dict[Path, str]) -> list[tuple[Path, str]]:
    """(file, class name) of every class deriving from an exception, to a fixed point over names."""
    classes = [(path, node) for path, text in sources.items()
               for node in ast.walk(ast.parse(text, filename=str(path))) if isinstance(node, ast.ClassDef)]
    known = set(BUILTIN_EXCEPTIONS)
    while True:
        grown = {node.name for _, node in classes if any(_base_name(b) in known for b in node.bases)}
        if grown <= known:
            break
        known |= grown
    return [(path, node.name) for path, node in classes if any(_base_name(b) in known for b in node.bases)]


def test_the_walk_finds_the_tree_itself() -> None:
    names = {name for path, name in exception_classes(_sources()) if path == HOME}
    assert {"BusError", "InvalidInput", "KafkaUnavailable", "ConnectorConfigError", "BatchNotCommitted"} <= names


def test_no_exception_class_is_defined_outside_bus_errors() -> None:
    strays = [f"{path.relative_to(ROOT)}: {name}" for path, name in exception_classes(_sources()) if path != HOME]
    assert not strays, "define these in bus/errors.py (one exception tree):\n" + "\n".join(strays)


def test_the_walk_catches_strays_by_attribute_by_builtin_and_by_chain() -> None:
    sources = _sources()
    sources[ROOT / "bus" / "stray.py"] = (
        "import bus.errors\n"
        "class Oops(bus.errors.InvalidInput): ...\n"
        "class Worse(Oops): ...\n"
        "class Plain(ValueError): ...\n"
        "class NotAnError(dict): ...\n"
    )
    strays = {name for path, name in exception_classes(sources) if path != HOME}
    assert strays == {"Oops", "Worse", "Plain"}
