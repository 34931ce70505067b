"""One request pipeline: every request passes the same hooks and middleware, and the layers
point down (the data layer imports nothing above it)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask_openapi3 import OpenAPI

import healthcare.db

DB_PACKAGE = Path(healthcare.db.__file__).parent


def _name(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _hooks(registry: dict[str | None, list[Callable[..., Any]]]) -> dict[str | None, list[str]]:
    return {scope: [_name(f) for f in functions] for scope, functions in registry.items()}


def test_the_hooks_every_request_passes_are_these(app: OpenAPI) -> None:
    """A new hook or a new middleware changes this list on purpose, never by accident; and no
    route can skip them, since the server has no way to the app but through the middleware."""
    assert _hooks(app.before_request_funcs) == {
        None: [
            "healthcare.observability._note_route",
            "healthcare.auth.web.authenticate",
            "healthcare.api.one_value_per_query_parameter",
        ],
        "patients_api": ["healthcare.api.patients._require_json_body"],
        "ui": ["healthcare.ui.admin._admins_only"],
    }
    assert _hooks(app.after_request_funcs) == {
        None: ["healthcare.fhir.outcome.problems_as_outcomes"]
    }
    assert _hooks(app.teardown_request_funcs) == {}
    assert _hooks(app.url_value_preprocessors) == {
        "ui": ["healthcare.ui.transfer._larger_body_for_the_upload"]
    }
    assert [type(app.wsgi_app).__qualname__] == ["RequestMiddleware"]
    assert app.wsgi_app.wsgi_app == app.__class__.wsgi_app.__get__(app)  # type: ignore[attr-defined]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_data_layer_imports_nothing_above_it() -> None:
    above = {
        f"{path.relative_to(DB_PACKAGE)}: {module}"
        for path in DB_PACKAGE.rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith("healthcare") and not module.startswith("healthcare.db")
    }
    assert above == set()


def test_the_import_rule_sees_an_import_from_above(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("from healthcare.audit import trail\nimport healthcare.db.raw\n")
    assert _imported_modules(module) == {"healthcare.audit", "healthcare.db.raw"}
