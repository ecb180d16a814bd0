"""bus/core is pure: no files, no environment, no network, no processes (docs/architecture.md).

The rule is what makes the core testable without a machine around it and keeps
every place that touches the outside world in bus/adapters. It is checked on the
syntax tree of every core module, so a new `import os` fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bus" / "core"

#: Modules whose only purpose is to reach outside the process.
FORBIDDEN_MODULES = frozenset({
    "os", "sys", "subprocess", "socket", "ssl", "shutil", "tempfile", "glob", "fileinput", "mmap",
    "http", "urllib", "asyncio", "kafka", "confluent_kafka", "httpx", "requests",
})
#: Names that may be imported from otherwise forbidden modules: pure values, no I/O.
ALLOWED_NAMES = {
    "pathlib": frozenset({"PurePath", "PurePosixPath", "PureWindowsPath"}),
    "io": frozenset({"BytesIO", "StringIO"}),
}
#: Methods that read or write files (pathlib, Traversable, file objects).
FILE_METHODS = frozenset({
    "read_text", "read_bytes", "write_text", "write_bytes", "open", "iterdir", "glob", "rglob",
    "exists", "is_file", "is_dir", "mkdir", "unlink", "touch", "stat",
})
#: Calls that read files or the environment however they are reached.
FORBIDDEN_CALLS = frozenset({"open", "getenv", "putenv", "input"})


def violations(source: str) -> list[str]:
    """Every place in `source` that does I/O or could, as 'line N: what'."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    found.append(f"line {line}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"line {line}: from {node.module} import ...")
            elif top in ALLOWED_NAMES:
                bad = [a.name for a in node.names if a.name not in ALLOWED_NAMES[top]]
                if bad:
                    found.append(f"line {line}: from {node.module} import {', '.join(bad)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"line {line}: {func.id}(...)")
            elif isinstance(func, ast.Attribute) and func.attr in FILE_METHODS | FORBIDDEN_CALLS:
                found.append(f"line {line}: .{func.attr}(...)")
            elif (isinstance(func, ast.Name) and func.id == "load_schema"
                  and not any(k.arg == "repo" for k in node.keywords)):
                found.append(f"line {line}: load_schema(...) without repo= reads schema files")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            found.append(f"line {line}: .environ")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in ALLOWED_NAMES and node.attr not in ALLOWED_NAMES[node.value.id]):
            found.append(f"line {line}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ("__file__", "environ"):
            found.append(f"line {line}: {node.id}")
    return found


CORE_MODULES = sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("module", CORE_MODULES, ids=[m.name for m in CORE_MODULES])
def test_core_module_does_no_io(module: Path) -> None:
    problems = violations(module.read_text(encoding="utf-8"))
    assert not problems, f"bus/core/{module.name} reaches outside the process: {problems}"


@pytest.mark.parametrize("snippet", [
    "import os",
    "import os.path",
    "from os import environ",
    "import subprocess",
    "from socket import create_connection",
    "from kafka import KafkaProducer",
    "from pathlib import Path",
    "from io import open",
    "import pathlib\nhere = pathlib.Path('x')",
    "import io\nf = io.FileIO('x')",
    "data = open('x').read()",
    "text = folder.joinpath('a.avsc').read_text()",
    "with path.open() as f: pass",
    "files = list(folder.iterdir())",
    "value = getenv('BUS_SCHEMAS_DIR')",
    "HERE = __file__",
    "import sys\nvalue = sys.argv",
    "schema = load_schema('schemas/avro/x.avsc')",
])
def test_the_check_catches_io(snippet: str) -> None:
    assert violations(snippet)


@pytest.mark.parametrize("snippet", [
    "from pathlib import PurePosixPath",
    "from io import BytesIO",
    "import io\nbuf = io.BytesIO()",
    "schema = load_schema(name, repo=texts)",
    "import json\ndata = json.loads(text)",
])
def test_the_check_allows_pure_code(snippet: str) -> None:
    assert violations(snippet) == []


def test_every_core_module_is_checked() -> None:
    assert {m.name for m in CORE_MODULES} >= {"codec.py", "codelists.py", "models.py", "sealing.py"}
