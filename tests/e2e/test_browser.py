"""The web interface in a real browser: Playwright driving Debian's Chromium against a live
`healthcare serve`, with axe-core checking each main page for accessibility.

Needs /usr/bin/chromium (`apt-get install chromium`) and axe-core (HEALTHCARE_TEST_AXE, which
`./run test` fetches from the npm registry); skipped with that reason where either is missing,
except in CI, where that is a failure. Screenshots go to a temporary folder; with
HEALTHCARE_SCREENSHOTS=docs/screenshots they refresh the ones in the README.

Every check on a page waits for it (Playwright's ``expect``): a page that a click loads may
not be there yet when the next line runs, and under load it often is not."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import TEST_AUDIT_KEY
from tests.e2e.conftest import Server, missing, start_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("HEALTHCARE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip
ADMIN_PASSWORD = "harbour lights glimmer 42"
NURSE_PASSWORD = "quiet orchard morning 17"
SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"no browser at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (./run setup installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    path = os.environ.get("HEALTHCARE_TEST_AXE")
    if not path or not Path(path).exists():
        missing("axe-core is not available (HEALTHCARE_TEST_AXE; ./run test fetches it)")
    return Path(path).read_text()


def _operator(database_url: str, data_dir: Path, *args: str, stdin: str = "") -> str:
    environment = {
        **os.environ,
        "HEALTHCARE_DATABASE_URL": database_url,
        "HEALTHCARE_DATA_DIR": str(data_dir),
        "HEALTHCARE_ENV": "development",
        "HEALTHCARE_AUDIT_KEY": TEST_AUDIT_KEY,  # the live server's
    }
    healthcare = Path(sys.executable).with_name("healthcare")
    return subprocess.run([str(healthcare), *args], env=environment, input=stdin, text=True,
                          capture_output=True, check=True).stdout  # fmt: skip


class Site:
    """A live server on a fresh database, with an admin, a clinician and an API token."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.url_db = f"sqlite:///{tmp / 'browser.db'}"
        env = {"HEALTHCARE_ADMIN_PASSWORD": ADMIN_PASSWORD, **env}
        self.server: Server = start_server(self.url_db, tmp, **env)
        _operator(self.url_db, tmp, "users", "create", "nurse", "--role", "clinician",
                  "--password-stdin", stdin=NURSE_PASSWORD + "\n")  # fmt: skip
        token = _operator(self.url_db, tmp, "tokens", "create", "admin", "--label", "tests").strip()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {token}"

    @property
    def url(self) -> str:
        return self.server.url

    def add_patient(self, **fields: Any) -> dict[str, Any]:
        response = self.api.post(f"{self.url}/patients", json=fields, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = Site(tmp_path_factory.mktemp("browser"))
    yield made
    made.server.stop()


def sign_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r".*/login"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/patients$"))


def new_context(chromium: Any, axe_source: str | None = None, **options: Any) -> Any:
    """A browser context; with axe-core injected into every page the way a browser
    extension would be, past the page's CSP (which stays on for the page's own scripts)."""
    context = chromium.new_context(**options)
    if axe_source:
        context.add_init_script(script=axe_source)
    return context


def assert_accessible(page: Any, what: str) -> None:
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]
    assert serious == [], f"{what}: {serious}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: a temporary folder unless HEALTHCARE_SCREENSHOTS names one."""
    asked = os.environ.get("HEALTHCARE_SCREENSHOTS")
    folder = Path(asked) if asked else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_the_front_desk_journey(
    chromium: Any, axe_source: str, site: Site, screenshots: Path
) -> None:
    context = new_context(chromium, axe_source, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []  # script errors, and anything the CSP had to block
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{site.url}/")
    assert_accessible(page, "sign-in page")
    sign_in(page, site.url, "nurse", NURSE_PASSWORD)
    expect(page.get_by_text("No patients yet")).to_be_visible()
    assert_accessible(page, "empty patient list")

    page.get_by_role("link", name="Add the first patient").click()
    page.get_by_label("Full name").fill("")
    page.get_by_label("Age").fill("200")
    page.get_by_label("Email").fill("not an address")
    page.get_by_label("Disease or condition").fill("Asthma")
    page.get_by_role("button", name="Add patient").click()
    expect(page.locator("#f-name-error")).to_have_text("Enter the patient's name.")
    expect(page.locator("#f-age-error")).to_contain_text("0 to 150")
    expect(page.locator("#f-email-error")).not_to_be_empty()
    expect(page.get_by_label("Disease or condition")).to_have_value("Asthma")
    expect(page.get_by_label("Age")).to_have_value("200")
    assert_accessible(page, "form with errors")
    screenshot(page, screenshots, "patient-form-errors")

    page.get_by_label("Full name").fill("Asha Verma")
    page.get_by_label("Age").fill("34")
    page.get_by_label("Email").fill("asha@example.org")
    page.get_by_label("Gender").select_option("female")
    page.get_by_role("button", name="Add patient").click()
    page.wait_for_url(re.compile(r".*/ui/patients/\d+$"))
    expect(page.get_by_text("Asha Verma was added.")).to_be_visible()
    patient_id = int(page.url.rsplit("/", 1)[1])

    for name, age, disease, gender in [("Zoë Ångström", 36, "Diabetes", "female"),
                                       ("Rahul Mehta", 52, "Hypertension", "male"),
                                       ("Olusegun Adeyemi", 29, "Asthma", "male"),
                                       ("María José García", 61, None, "female")]:  # fmt: skip
        site.add_patient(name=name, age=age, disease=disease, gender=gender)
    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_label("Name").fill("ash")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Asha Verma")
    page.get_by_role("link", name="Clear").click()
    expect(page.locator(".total")).to_contain_text("Showing 1–5 of 5 patients")
    assert_accessible(page, "patient list")
    screenshot(page, screenshots, "patient-list")

    page.get_by_role("link", name="Asha Verma").click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Disease or condition").fill("Asthma, mild")
    changed = site.api.patch(f"{site.url}/patients/{patient_id}", json={"phone": "555 0100"})
    assert changed.status_code == 200  # someone else saves first
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Someone else changed this record")).to_be_visible()
    expect(page.get_by_label("Disease or condition")).to_have_value("Asthma, mild")
    page.get_by_role("link", name="Load the latest version").click()
    expect(page.get_by_label("Phone")).to_have_value("555 0100")
    page.get_by_label("Disease or condition").fill("Asthma, mild")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Your changes were saved.")).to_be_visible()
    expect(page.get_by_text("Asthma, mild")).to_be_visible()
    assert_accessible(page, "patient detail")

    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete patient").click()
    expect(page.get_by_text("Asha Verma was deleted.")).to_be_visible()
    assert site.api.get(f"{site.url}/patients/{patient_id}").status_code == 404
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_text("Asha Verma was restored.")).to_be_visible()
    assert site.api.get(f"{site.url}/patients/{patient_id}").status_code == 200

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(f"{site.url}/ui/patients/{patient_id}")
    expect(page).to_have_url(re.compile(r".*/login\?next="))
    assert problems == []
    context.close()


def test_admin_pages_and_the_detail_screenshot(
    chromium: Any, axe_source: str, site: Site, screenshots: Path
) -> None:
    patient = site.add_patient(name="Kwame Mensah", age=47, disease="Sickle cell disease",
                               gender="male", phone="+233 20 123 4567",
                               notes="Prefers morning appointments.")  # fmt: skip
    site.api.get(f"{site.url}/patients/{patient['id']}")
    context = new_context(chromium, axe_source, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site.url, "admin", ADMIN_PASSWORD)
    page.goto(f"{site.url}/ui/patients/{patient['id']}")
    expect(page.get_by_role("heading", name="Access log")).to_be_visible()
    assert_accessible(page, "patient detail with access log")
    screenshot(page, screenshots, "patient-detail")
    for path, heading in [("/ui/admin/users", "Users"), ("/ui/admin/tokens", "API tokens"),
                          ("/ui/admin/audit", "Audit trail"),
                          ("/ui/patients/deleted", "Deleted patients"),
                          ("/ui/account/password", "Change my password")]:  # fmt: skip
        page.goto(site.url + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert_accessible(page, path)
    page.goto(f"{site.url}/ui/patients/999999")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert_accessible(page, "404 page")
    context.close()


def test_the_list_is_usable_on_a_phone(
    chromium: Any, axe_source: str, site: Site, screenshots: Path
) -> None:
    context = new_context(chromium, axe_source, viewport={"width": 390, "height": 844},
                          is_mobile=True)  # fmt: skip
    page = context.new_page()
    sign_in(page, site.url, "nurse", NURSE_PASSWORD)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    expect(page.get_by_role("button", name="Search")).to_be_visible()
    assert_accessible(page, "patient list on a phone")
    screenshot(page, screenshots, "patient-list-phone")
    context.close()


def test_keyboard_only_sign_in(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/login")
    expect(page.get_by_label("User name")).to_be_focused()  # autofocus, on arrival
    page.keyboard.type("nurse")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(NURSE_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/patients$"))
    expect(page.get_by_text("No patients yet").or_(page.locator("tbody"))).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    context.close()


def test_automatic_logoff_warns_then_signs_out(
    chromium: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With a 1-minute idle limit: the banner comes, "Stay signed in" keeps the session past
    the moment it would have ended, and without activity the page signs out by itself and says
    why."""
    site = Site(tmp_path_factory.mktemp("logoff"), HEALTHCARE_SESSION_IDLE_MINUTES="1")
    try:
        context = chromium.new_context()
        page = context.new_page()
        sign_in(page, site.url, "nurse", NURSE_PASSWORD)
        would_end_at = time.monotonic() + 60  # the server saw the sign-in's page load last
        banner = page.locator("#logoff-banner")
        expect(banner).to_be_visible(timeout=45_000)
        expect(banner).to_contain_text("signed out in")
        page.get_by_role("button", name="Stay signed in").click()
        expect(banner).to_be_hidden(timeout=5_000)
        time.sleep(max(0.0, would_end_at + 3 - time.monotonic()))  # past the old idle limit
        still = page.request.get(f"{site.url}/me", headers={"Accept": "application/json"})
        assert still.status == 200, "Stay signed in did not extend the session"
        page.wait_for_url(re.compile(r".*/login\?reason=idle$"), timeout=90_000)
        expect(page.get_by_text("signed out after a period without activity")).to_be_visible()
        page.goto(f"{site.url}/ui/patients")
        expect(page).to_have_url(re.compile(r".*/login"))  # the server ended the session too
        context.close()
    finally:
        site.server.stop()
