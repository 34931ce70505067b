"""Forwarded headers count only from a configured proxy address (issue 13, item 6)."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_network

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from healthcare.config import ConfigError, load_settings
from healthcare.db.database import Database
from healthcare.proxies import ProxyAddresses, resolve
from tests.auth.test_sessions import CSRF, sign_in
from tests.conftest import TEST_PASSWORD, TEST_SECRET, Account, audit_rows

PROXY = "10.0.0.5"
WRONG = "not the right password"


@pytest.fixture
def behind_a_proxy(make_app: Callable[..., OpenAPI]) -> OpenAPI:
    """Configured as behind one proxy at PROXY; the test client itself connects directly."""
    return make_app(
        trusted_proxies=1, trusted_proxy_addresses=f"{PROXY}/32", login_max_failures_per_client=3
    )


def test_a_direct_client_cannot_rotate_its_way_past_the_sign_in_limit(
    behind_a_proxy: OpenAPI, accounts: dict[str, Account]
) -> None:
    """The review's attack: a new X-Forwarded-For (and a new user name) on every try."""
    for attempt in range(3):
        browser = behind_a_proxy.test_client()
        browser.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{attempt}"
        assert sign_in(browser, f"guess{attempt}", WRONG).status_code == 401
    browser = behind_a_proxy.test_client()
    browser.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.99"
    assert sign_in(browser, "guess99", WRONG).status_code == 429


def test_a_direct_client_cannot_forge_its_audit_address(
    behind_a_proxy: OpenAPI, anonymous: FlaskClient
) -> None:
    client = behind_a_proxy.test_client()
    client.get("/patients", headers={"X-Forwarded-For": "203.0.113.9"})
    [denied] = audit_rows(behind_a_proxy.extensions["healthcare.db"], action="access.denied")
    assert denied["client"] == "127.0.0.1"


def test_the_proxy_supplies_the_client_address_and_the_scheme(
    behind_a_proxy: OpenAPI, accounts: dict[str, Account]
) -> None:
    proxy = behind_a_proxy.test_client()
    proxy.environ_base["REMOTE_ADDR"] = PROXY
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    token = CSRF.search(proxy.get("/login", headers=https).get_data(as_text=True)).group(1)
    form = {"username": "viewer", "password": TEST_PASSWORD, "csrf_token": token}
    response = proxy.post("/login", data=form, headers=https)
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    db: Database = behind_a_proxy.extensions["healthcare.db"]
    [signed_in] = audit_rows(db, action="login.success")
    assert signed_in["client"] == "203.0.113.9"


def test_proxies_without_addresses_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("HEALTHCARE_TRUSTED_PROXIES", "1")
    with pytest.raises(ConfigError, match="HEALTHCARE_TRUSTED_PROXY_ADDRESSES"):
        load_settings()
    monkeypatch.setenv("HEALTHCARE_TRUSTED_PROXY_ADDRESSES", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="HEALTHCARE_TRUSTED_PROXY_ADDRESSES"):
        load_settings()
    monkeypatch.setenv("HEALTHCARE_TRUSTED_PROXY_ADDRESSES", "10.0.0.5, fd00::/8, proxy")
    assert load_settings().proxy_addresses == ProxyAddresses(
        (ip_network("10.0.0.5/32"), ip_network("fd00::/8")), ("proxy",)
    )
    monkeypatch.setenv("HEALTHCARE_TRUSTED_PROXY_ADDRESSES", "not a host!")
    with pytest.raises(ConfigError, match="not an address"):
        load_settings()


def test_a_proxy_named_by_host_name_is_trusted_at_its_address(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account]
) -> None:
    """Compose's Caddy is `proxy`, at an address Docker chooses: the name is looked up."""
    app = make_app(trusted_proxy_addresses="localhost")
    assert "127.0.0.1" in resolve(["localhost"])
    app.test_client().get("/patients", headers={"X-Forwarded-For": "203.0.113.9"})
    [denied] = audit_rows(app.extensions["healthcare.db"], action="access.denied")
    assert denied["client"] == "203.0.113.9"
    assert resolve(["no-such-proxy.invalid"]) == frozenset()
