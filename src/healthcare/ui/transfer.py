"""Admin pages: download every patient (CSV or FHIR NDJSON), upload a file of patients.

The upload is the one request allowed a body larger than HEALTHCARE_MAX_BODY_BYTES: up to
HEALTHCARE_MAX_IMPORT_BYTES, set for this route only before the body is read."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flask import Response, current_app, render_template, request, stream_with_context

from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.exchange import FORMATS, MEDIA_TYPES, export_lines, format_of, read_patients
from healthcare.exchange.tabular import UnreadableFile
from healthcare.patients.bulk import ImportReport, import_patients
from healthcare.ui.blueprint import bp

OPTIONS = ("dry_run", "skip_invalid", "confirm_duplicates")


@bp.url_value_preprocessor
def _larger_body_for_the_upload(endpoint: str | None, _values: dict | None) -> None:
    """Runs once the route is known and before any hook reads the body (the CSRF check
    reads the form)."""
    if endpoint == "ui.admin_import":
        settings = current_app.extensions["healthcare.settings"]
        request.max_content_length = settings.max_import_bytes
        request.max_form_memory_size = settings.max_import_bytes


def _page(
    report: ImportReport | None = None, error: str = "", status: int = 200, dry_run: bool = False
) -> Response:
    page = render_template("admin/transfer.html", report=report, error=error, dry_run=dry_run)
    return Response(page, status)


@bp.get("/ui/admin/transfer")
def admin_transfer() -> Response:
    return _page()


@bp.get("/ui/admin/export.<fmt>")
def admin_export(fmt: str) -> Response:
    if fmt not in FORMATS:
        return _page(error=f"There is no export format {fmt!r}.", status=404)
    lines = export_lines(current_database(), current_actor(), fmt)  # type: ignore[arg-type]
    first = next(lines, "")  # refusals and the first batch's audit happen before the answer
    body = stream_with_context(_chained(first, lines))
    headers = {"Content-Disposition": f'attachment; filename="patients.{fmt}"'}
    return Response(body, mimetype=MEDIA_TYPES[fmt], headers=headers)


def _chained(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


@bp.post("/ui/admin/import")
def admin_import() -> Response:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(error="Choose a file to import.", status=422)
    chosen = format_of(upload.filename)
    text = io.TextIOWrapper(upload.stream, encoding="utf-8-sig", newline="")
    options = {name: request.form.get(name) == "on" for name in OPTIONS}
    try:
        report = import_patients(
            current_database(), current_actor(), read_patients(text, chosen), **options
        )
    except (UnreadableFile, UnicodeDecodeError) as exc:
        return _page(error=f"{upload.filename}: {exc}", status=422)
    dry_run = options["dry_run"]
    return _page(report, status=200 if report.written or dry_run else 422, dry_run=dry_run)
