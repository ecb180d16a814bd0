"""Schemathesis fuzzes http-ingest from its own OpenAPI document, on the in-memory Kafka engine.

Requests are generated from the document, both as it describes them and broken in
every way it forbids. Whatever arrives, the connector answers without a server error,
with a status the document lists for that operation and a body of its documented
schema; it refuses what the document forbids, refuses every request without its token,
and answers 405 to the methods it does not serve. (The pytest plugin of schemathesis is
disabled in pyproject.toml; it is used here as a library.)
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from bus.adapters.federation_file import make_demo
from tests.unit.ingest_on_memory import RISK_TOKEN, memory_ingest

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth, unsupported_method]
REFUSALS = [400, 401, 403, 404, 405, 411, 413, 415, 422]
"""What counts as refusing a request the document forbids (413: a batch over the limit)."""
EXAMPLES_PER_MODE = 60


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
                         ids=["as-documented", "forbidden"])
def test_whatever_is_posted_the_answer_is_one_the_document_promises(mode, tmp_path):
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}})
    answered: Counter[tuple[str, int]] = Counter()
    fed = make_demo(tmp_path / "federation")  # receipts followed: the status endpoint answers from them
    with memory_ingest(receipts_from=fed.directory) as memory:
        schema = schemathesis.openapi.from_asgi("/openapi.json", memory.app, config=config)

        @given(case=schema.as_strategy(mode, headers={"Authorization": f"Bearer {RISK_TOKEN}"}))
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS)
            answered[(case.operation.label, response.status_code)] += 1

        fuzz()
    posted = {label for label, _ in answered if label.startswith("POST ")}
    assert len(posted) == 3, f"the fuzz reached only {sorted(posted)}"
