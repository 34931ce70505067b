"""Schemathesis drives the live API from its own OpenAPI document.

schemathesis.pytest.from_fixture cannot follow the parametrised database fixture
(schemathesis issue 1121), so each operation's strategy is driven with hypothesis directly.
Writes skip the "schema-valid data is accepted" check: two rules of a patient are beyond JSON
Schema (a birth date not in the future, an age that agrees with the birth date), so a
schema-valid body can rightly get 422. Every other check runs on every operation."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode

from tests.e2e.conftest import Server, api_session

EXAMPLES_PER_OPERATION = 30


def _without_security(server: Server, database_url: str) -> dict[str, Any]:
    """The served document, minus its security requirements: credentials are not data to
    generate (the role matrix tests them); every call carries a valid admin token instead."""
    document = api_session(database_url, "viewer").get(f"{server.url}/openapi.json", timeout=10)
    spec = document.json()
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return spec


def _has_inputs(operation: schemathesis.APIOperation) -> bool:
    return any(True for _ in operation.iter_parameters()) or bool(
        operation.get_request_payload_content_types()
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(
    live_server: Server, database_url: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(_without_security(live_server, database_url))
    schema.config.update(base_url=live_server.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing in the request to make invalid (e.g. /healthz)
        # A new admin for each operation: the generated calls may revoke its token or
        # change its role (the answers must still conform, but later calls would be refused).
        _check_operation(operation, mode, dict(api_session(database_url).headers))


def _check_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: schemathesis.Case) -> None:
        excluded = [positive_data_acceptance] if case.body is not NOT_SET else []
        case.call_and_validate(timeout=10, headers=headers, excluded_checks=excluded)

    conforms()
