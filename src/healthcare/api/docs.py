"""The OpenAPI document and interactive docs, with every asset served by the app (no CDN)."""

from __future__ import annotations

from pathlib import Path

import flask_openapi3_swagger
from flask import Blueprint, Response, current_app, send_from_directory

from healthcare.api.responses import json_response

SWAGGER_ASSETS = Path(flask_openapi3_swagger.__file__).parent / "templates" / "swagger"
HERE = Path(__file__).parent

bp = Blueprint("docs", __name__)

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Healthcare API</title>
<link rel="stylesheet" href="/docs/assets/css/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="/openapi.json"></div>
<script src="/docs/assets/js/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(current_app.api_doc)


@bp.get("/docs")
def docs_page() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/init.js")
def docs_script() -> Response:
    return send_from_directory(HERE / "static", "docs.js")


@bp.get("/docs/assets/<path:filename>")
def docs_asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_ASSETS, filename)
