"""`import bus`: the few names an agency developer needs, loaded only when used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bus
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from tests.helpers import EXAMPLES, REPO, keyring_for


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after `statement`."""
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(out.stdout))


def test_import_bus_loads_nothing_heavy() -> None:
    modules = loaded_modules("import bus")
    assert not {"pydantic", "kafka", "fastavro", "bus.api", "bus.core"} & modules


def test_importing_the_core_does_not_load_kafka_or_services() -> None:
    modules = loaded_modules("import bus.core.models")
    assert not {"kafka", "confluent_kafka", "bus.api", "bus.services.publisher"} & modules
    assert not any(m.startswith("bus.services") or m.startswith("bus.adapters") for m in modules)


def test_every_public_name_resolves() -> None:
    for name in bus.__all__:
        assert getattr(bus, name) is not None, name
    assert set(bus.__all__) <= set(dir(bus))
    assert bus.KafkaSettings is KafkaSettings
    with pytest.raises(AttributeError, match="no attribute 'Publisher'"):
        bus.Publisher  # noqa: B018  (not public: its constructor is internal)


def example_data(name: str = "suspicious-container") -> dict[str, object]:
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    data["header"].pop("producer", None)
    return data


def test_publish_validates_everything_before_touching_kafka() -> None:
    nobody = KafkaSettings(bootstrap="127.0.0.1:1")  # nothing listens: reaching Kafka would fail differently
    good, bad = example_data(), example_data()
    bad["container_number"] = "CSQU3054384"
    bad["header"]["tlp"] = "PURPLE"  # type: ignore[index]
    with pytest.raises(bus.AlertValidationError) as info:
        bus.publish(nobody, SigningKey.generate("NL-CUSTOMS"), [good, bad])
    paths = {path for path, _ in info.value.errors}
    assert paths == {"[1].container_number", "[1].header.tlp"}


def test_verify_returns_the_alert_and_its_originator_or_says_why_not() -> None:
    from bus.adapters.schema_files import default_schemas
    from bus.core.sealing import seal

    signer = SigningKey.generate("NL-CUSTOMS")
    alert = bus.parse_alert(example_data(), producer="NL-CUSTOMS")
    record = seal(alert, signer, default_schemas())
    verified = bus.verify(record.key, record.value, record.headers, keyring_for(signer))
    assert verified.alert == alert and verified.producer == "NL-CUSTOMS" and verified.key_id == signer.key_id
    stranger = keyring_for(SigningKey.generate("NL-CUSTOMS"))
    with pytest.raises(bus.VerificationError) as info:
        bus.verify(record.key, record.value, record.headers, stranger)
    assert info.value.reason is bus.RejectReason.UNKNOWN_KEY
