"""Patient identity in a real browser: the duplicate warning with links and "create anyway",
the record number on the record, and the history page, each checked by axe-core."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import (  # noqa: F401 - fixtures
    ADMIN_PASSWORD,
    NURSE_PASSWORD,
    Site,
    assert_accessible,
    axe_source,
    chromium,
    new_context,
    screenshot,
    screenshots,
    sign_in,
    site,
)

pytestmark = pytest.mark.slow


def test_a_likely_duplicate_is_shown_before_saving_and_history_reads_as_a_difference(
    chromium: Any,  # noqa: F811
    axe_source: str,  # noqa: F811
    site: Site,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    first = site.add_patient(name="Asha Verma", date_of_birth="1990-03-04", phone="020 7946 0958")
    context = new_context(chromium, axe_source, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site.url, "nurse", NURSE_PASSWORD)
    page.goto(f"{site.url}/ui/patients/new")
    page.get_by_label("Given names").fill("Asha")
    page.get_by_label("Family name").fill("Vrema")
    page.get_by_label("Date of birth").fill("1990-03-04")
    page.get_by_role("button", name="Add patient").click()
    warning = page.locator("#duplicates")
    expect(warning).to_contain_text("already on record")
    expect(warning.get_by_role("link", name="Asha Verma")).to_have_attribute(
        "href", f"/ui/patients/{first['id']}"
    )
    expect(warning).to_contain_text(first["mrn"])
    expect(page.get_by_label("Family name")).to_have_value("Vrema")
    assert_accessible(page, "duplicate warning")
    screenshot(page, screenshots, "patient-duplicate-warning")

    page.get_by_role("button", name="Create anyway").click()
    page.wait_for_url(re.compile(r".*/ui/patients/\d+$"))
    duplicate_url = page.url
    expect(page.get_by_text("Asha Vrema was added.")).to_be_visible()
    expect(page.locator("h1 .mrn")).to_have_text(re.compile(r"^MRN\d{9}$"))

    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Family name").fill("Verma-Rao")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#duplicates")).to_contain_text("Asha Verma")  # still alike: asked again
    page.get_by_role("button", name="Save anyway").click()
    expect(page.get_by_text("Your changes were saved.")).to_be_visible()
    page.get_by_role("link", name="Every version of this record").click()
    expect(page.get_by_role("heading", name="Version 2: changed")).to_be_visible()
    version_2 = page.get_by_role("region", name="Version 2: changed")
    expect(version_2.get_by_role("row", name="Family name Vrema Verma-Rao")).to_be_visible()
    expect(page.get_by_role("heading", name="Version 1: added")).to_be_visible()
    assert_accessible(page, "patient history")
    screenshot(page, screenshots, "patient-history")

    duplicate_mrn = page.locator("h1 .mrn").inner_text()
    page.goto(f"{site.url}/ui/patients/{first['id']}")
    page.get_by_role("link", name="Merge a duplicate").click()
    page.get_by_label("Record number or id of the duplicate").fill(duplicate_mrn)
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("row", name=re.compile("^Family name"))).to_contain_text("Verma-Rao")
    assert_accessible(page, "merge page")
    screenshot(page, screenshots, "patient-merge")
    page.get_by_role("button", name="Merge the duplicate into this record").click()
    expect(page.get_by_text("was merged into this one")).to_be_visible()
    context.close()

    admin = new_context(chromium, axe_source, viewport={"width": 1280, "height": 900})
    page = admin.new_page()
    sign_in(page, site.url, "admin", ADMIN_PASSWORD)
    page.goto(duplicate_url)
    expect(page.locator("#merged")).to_contain_text(f"record {first['id']}")
    assert_accessible(page, "merged record")
    page.get_by_role("button", name="Undo this merge").click()
    expect(page.get_by_text("The merge was undone")).to_be_visible()
    expect(page.locator("#merged")).to_have_count(0)
    admin.close()
