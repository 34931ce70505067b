"""The admin import and export page in a real browser: a dry run's report by row, an import,
a download; each page checked by axe-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import (  # noqa: F401 - fixtures
    ADMIN_PASSWORD,
    Site,
    assert_accessible,
    axe_source,
    chromium,
    new_context,
    sign_in,
    site,
)

pytestmark = pytest.mark.slow
FILE = b"family_name,given_names,date_of_birth,phone\nOkafor,Chidi,1984-05-06,\n,,,x\n"


def test_an_admin_checks_imports_and_downloads_patients(
    chromium: Any,  # noqa: F811
    axe_source: str,  # noqa: F811
    site: Site,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    context = new_context(chromium, axe_source, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site.url, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Import and export").click()
    expect(page.get_by_role("heading", name="Import and export patients")).to_be_visible()
    upload = {"name": "patients.csv", "mimeType": "text/csv", "buffer": FILE}
    page.get_by_label("File").set_input_files(upload)
    expect(page.get_by_label("Dry run: check every row, write nothing")).to_be_checked()
    page.get_by_role("button", name="Import").click()
    report = page.get_by_role("status")
    expect(report).to_contain_text("Checked (dry run)")
    expect(report).to_contain_text("Would create 1 of 2 patients.")
    expect(report).to_contain_text("Row 3: name: Field required")
    assert_accessible(page, "import dry run report")

    page.get_by_label("File").set_input_files(upload)
    page.get_by_label("Dry run: check every row, write nothing").uncheck()
    page.get_by_label("Skip invalid rows").check()
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("Created 1 of 2 patients.")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    exported = Path(download.value.path()).read_text()
    assert "Okafor" in exported
    assert exported.startswith("id,mrn,name,")
    context.close()
