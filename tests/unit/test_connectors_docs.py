"""The operator guide documents every connector setting there is."""

from __future__ import annotations

from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from connectors.sdk.registry import BUILTIN, load_connector

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text()


def _model_in(annotation: object) -> tuple[type[BaseModel], str] | None:
    """The settings model a field holds, directly, optionally (`X | None`) or as a list (`list[X]`,
    written `name[].field` in the guide), with the suffix its path takes."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is list and len(args) == 1:
        inner = _model_in(args[0])
        return (inner[0], "[]" + inner[1]) if inner else None
    if len(args) == 1 and get_origin(annotation) is not list:
        return _model_in(args[0])
    return None


def leaf_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation) if name != "kafka" else None
        if inner is not None:
            paths += leaf_fields(inner[0], f"{prefix}{name}{inner[1]}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def documented(path: str) -> bool:
    """A setting is documented when its whole dotted path is written as code (`ingest.max_batch`):
    a bare leaf name (`port`, `encoding`) is in the guide for many other reasons."""
    return f"`{path}`" in GUIDE


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_setting_is_in_the_operator_guide(name):
    missing = [path for path in leaf_fields(load_connector(name).settings_class) if not documented(path)]
    assert not missing, f"docs/operators.md does not mention: {missing}"
    assert f"`{name}`" in GUIDE


def test_a_name_mentioned_in_passing_does_not_count_as_documented():
    assert "encoding" in GUIDE and not documented("encoding")
    assert not documented("directory_drop.no_such_setting")
