"""docs/architecture.md is the map a newcomer reads first: it must match the module tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
NAMED_PATHS = {p.rstrip("/") for p in re.findall(r"`((?:bus|connectors)/[A-Za-z0-9_./-]*)`", DOC)}
DOTTED = set(re.findall(r"\b((?:bus|connectors)(?:\.[a-z_][a-z0-9_]*)+)", DOC))


def _is_module(parts: list[str]) -> bool:
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_every_path_the_doc_names_exists() -> None:
    missing = sorted(p for p in NAMED_PATHS if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_dotted_name_starts_with_a_real_module() -> None:
    """`bus.errors.RejectReason` is fine (a module, then a name in it); `bus.nowhere.x` is not."""
    stale = sorted(d for d in DOTTED if not any(_is_module(d.split(".")[:i]) for i in range(2, len(d.split(".")) + 1)))
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def test_every_package_is_on_the_map() -> None:
    packages = sorted(str(init.parent.relative_to(ROOT)) for top in ("bus", "connectors")
                      for init in (ROOT / top).rglob("__init__.py"))
    unmapped = [p for p in packages if p not in ("bus", "connectors")
                and not any(n == p or n.startswith(p + "/") for n in NAMED_PATHS)]
    assert not unmapped, f"packages docs/architecture.md does not mention: {unmapped}"
