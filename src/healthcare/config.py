"""Settings, read once from ``HEALTHCARE_*`` environment variables and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthcare.proxies import ProxyAddresses, parse_proxy_addresses

PLACEHOLDER_SECRET_KEYS = frozenset({"", "change-me", "changeme", "secret", "dev", "development"})
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """The environment does not describe a service that may start."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHCARE_", extra="ignore")

    env: Literal["production", "development", "testing"] = "production"
    secret_key: str = ""
    data_dir: Path = Path("instance")
    database_url: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # The admin import page's upload only (a file of patients); every other route keeps
    # max_body_bytes.
    max_import_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    blocking_threads: int = Field(16, ge=1, le=256)
    # Headers (granian) and body (healthcare.whole_requests) must arrive within this time.
    read_timeout_seconds: int = Field(10, ge=1, le=60)
    port: int = Field(9000, ge=1, le=65535, validation_alias="PORT")
    web_concurrency: int = Field(2, ge=1, le=64, validation_alias="WEB_CONCURRENCY")
    # Access control (issue 3): browser sessions, the sign-in brake, proxies, first admin.
    session_idle_minutes: int = Field(15, ge=1, le=24 * 60)
    session_max_hours: int = Field(12, ge=1, le=7 * 24)
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_max_failures_per_client: int = Field(20, ge=1, le=100_000)
    login_window_minutes: int = Field(15, ge=1, le=24 * 60)
    trusted_proxies: int = Field(0, ge=0, le=5)
    # Forwarded headers count only from these peers (addresses, CIDRs or host names).
    trusted_proxy_addresses: str = ""
    admin_password: SecretStr | None = None
    audit_flush_ms: int = Field(250, ge=10, le=10_000)
    # Past these, reads answer 503 until the audit catches up (healthcare.audit.pending).
    audit_max_pending: int = Field(10_000, ge=100, le=1_000_000)
    audit_max_wait_ms: int = Field(2_000, ge=100, le=600_000)
    # Security review (issue 13): the keyed audit chain and its checkpoints outside the database.
    audit_key: SecretStr | None = None
    audit_checkpoints: Path | None = None
    audit_checkpoint_seconds: int = Field(60, ge=1, le=24 * 3600)
    app_role_password: SecretStr | None = None
    # Patient identity (issue 14): the letters before a medical record number's digits.
    mrn_prefix: str = Field("MRN", pattern=r"^[A-Z]{0,8}$")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @field_validator("trusted_proxy_addresses")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_proxy_addresses(value)  # a ValueError names the bad entry
        return value

    @property
    def proxy_addresses(self) -> ProxyAddresses:
        return parse_proxy_addresses(self.trusted_proxy_addresses)

    @model_validator(mode="after")
    def _default_database_in_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'healthcare.db').resolve()}"
        return self

    def require_proxy_addresses(self) -> None:
        """Forwarded headers from anyone would let a client choose its own address."""
        if self.trusted_proxies and not self.trusted_proxy_addresses.strip():
            raise ConfigError(
                "HEALTHCARE_TRUSTED_PROXIES needs HEALTHCARE_TRUSTED_PROXY_ADDRESSES: the "
                "addresses (or CIDR networks) of the proxies whose X-Forwarded-* headers count"
            )

    def require_secret_key(self) -> None:
        """Refuse to run outside development with a missing, placeholder or short secret key."""
        if self.env == "development":
            return
        key = self.secret_key.strip()
        if key.lower() in PLACEHOLDER_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "HEALTHCARE_SECRET_KEY is missing or a placeholder: set it to a random value of at "
                f"least {MIN_SECRET_KEY_LENGTH} characters, e.g. "
                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )


def _variable_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "settings"
    return field if field.isupper() else f"HEALTHCARE_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) and fail with a readable message."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{_variable_name(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    settings.require_secret_key()
    settings.require_proxy_addresses()
    return settings
