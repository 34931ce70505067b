"""Schemathesis drives the live API from its own OpenAPI document.

schemathesis.pytest.from_fixture cannot follow the parametrised database fixture
(schemathesis issue 1121), so each operation's strategy is driven with hypothesis directly.
Writes skip the "schema-valid data is accepted" check: two rules of a patient are beyond JSON
Schema (a birth date not in the future, an age that agrees with the birth date), so a
schema-valid body can rightly get 422. Every other check runs on every operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode

from tests.e2e.conftest import Server

EXAMPLES_PER_OPERATION = 30


def _has_inputs(operation: schemathesis.APIOperation) -> bool:
    return any(True for _ in operation.iter_parameters()) or bool(
        operation.get_request_payload_content_types()
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(live_server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing in the request to make invalid (e.g. /healthz)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case) -> None:
            excluded = [positive_data_acceptance] if case.body is not NOT_SET else []
            case.call_and_validate(timeout=10, excluded_checks=excluded)

        conforms()
