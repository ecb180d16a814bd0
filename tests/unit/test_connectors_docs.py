"""The operator guide documents every connector setting there is."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.sdk.registry import BUILTIN, load_connector

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text()


def leaf_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name != "kafka":
            paths += leaf_fields(annotation, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_setting_is_in_the_operator_guide(name):
    missing = [path for path in leaf_fields(load_connector(name).settings_class)
               if f"`{path}`" not in GUIDE and path.rsplit(".", 1)[-1] not in GUIDE]
    assert not missing, f"docs/operators.md does not mention: {missing}"
    assert f"`{name}`" in GUIDE
