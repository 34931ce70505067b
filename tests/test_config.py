"""Settings: read from HEALTHCARE_* variables, refused when unsafe."""

from __future__ import annotations

import pytest

from healthcare.config import ConfigError, load_settings
from tests.conftest import TEST_SECRET


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["HEALTHCARE_SECRET_KEY", "HEALTHCARE_ENV", "HEALTHCARE_DATABASE_URL", "PORT"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("key", [None, "", "change-me", "short-key"])
def test_production_refuses_missing_or_weak_secret_key(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is not None:
        monkeypatch.setenv("HEALTHCARE_SECRET_KEY", key)
    with pytest.raises(ConfigError, match="HEALTHCARE_SECRET_KEY"):
        load_settings()


def test_development_runs_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHCARE_ENV", "development")
    assert load_settings().env == "development"


def test_variables_are_read_with_prefix_and_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("HEALTHCARE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORT", "9100")
    settings = load_settings()
    assert settings.port == 9100
    assert settings.database_url == f"sqlite:///{tmp_path}/healthcare.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "not-a-port"), ("HEALTHCARE_DATABASE_URL", "mysql://x"), ("WEB_CONCURRENCY", "0")],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
