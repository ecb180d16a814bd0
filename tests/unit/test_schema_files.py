"""Where schemas and code lists come from: the shipped package data, or folders an operator names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.adapters import resources, schema_files
from bus.errors import CodeListError, ConfigError

REPO = Path(__file__).resolve().parents[2]

THING = {"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "x", "type": "int"}]}
EMPACT = """
cycles:
  '2030-2033':
    valid_from: '2030-01-01'
    valid_to: '2033-12-31'
    priorities:
      - {code: NEW, title: A priority of a future cycle}
"""


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "avro"
    folder.mkdir()
    (folder / "thing.avsc").write_text(json.dumps(THING))
    (folder / "README.md").write_text("not a schema")
    return folder


@pytest.fixture
def codelist_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "codelists"
    folder.mkdir()
    (folder / "empact.yaml").write_text(EMPACT)
    return folder


def test_a_folder_of_schemas_is_every_avsc_file_in_it(schema_dir: Path) -> None:
    schemas = schema_files.load_schemas(schema_dir)
    assert schemas.alert_types == {"thing"}
    assert schemas.origin == str(schema_dir)


def test_a_missing_schema_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"schema folder {tmp_path / 'nope'} does not exist"):
        schema_files.load_schemas(tmp_path / "nope")


def test_a_missing_code_list_is_named(tmp_path: Path) -> None:
    with pytest.raises(CodeListError, match=r"cannot read EMPACT code list .*empact\.yaml"):
        schema_files.load_empact_codes(tmp_path)


def test_the_shipped_data_is_the_repository_data() -> None:
    """The package data (bus/_data) is the top-level schemas/ folder, not a copy that can drift."""
    shipped = schema_files.load_schemas(resources.avro_schemas())
    repo = schema_files.load_schemas(REPO / "schemas" / "avro")
    assert shipped.fingerprints() == repo.fingerprints()
    assert schema_files.load_empact_codes(resources.code_lists()) == schema_files.load_empact_codes(
        REPO / "schemas" / "codelists"
    )


def test_defaults_are_the_shipped_data_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(schema_files.SCHEMAS_ENV, raising=False)
    monkeypatch.delenv(schema_files.CODELISTS_ENV, raising=False)
    assert schema_files.default_schemas() is schema_files.default_schemas()
    assert schema_files.default_schemas().origin == str(resources.avro_schemas())
    assert schema_files.default_empact_codes() is schema_files.default_empact_codes()
    assert "2026-2029" in schema_files.default_empact_codes().cycles


def test_operators_can_point_at_other_folders(
    schema_dir: Path, codelist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(schema_files.SCHEMAS_ENV, str(schema_dir))
    monkeypatch.setenv(schema_files.CODELISTS_ENV, str(codelist_dir))
    assert schema_files.default_schemas().alert_types == {"thing"}
    assert list(schema_files.default_empact_codes().cycles) == ["2030-2033"]
    monkeypatch.delenv(schema_files.SCHEMAS_ENV)
    monkeypatch.delenv(schema_files.CODELISTS_ENV)
    assert "suspicious-container" in schema_files.default_schemas().alert_types
    assert "2030-2033" not in schema_files.default_empact_codes().cycles
