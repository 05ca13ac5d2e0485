"""Settings from the environment (`ACCESSIQ_*`): the product's one home for configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from accessiq.endpoints import EndpointAllowList


class Settings(BaseSettings):
    """Process settings. Directory settings live in the store, not here."""

    model_config = SettingsConfigDict(env_prefix="ACCESSIQ_", extra="ignore")

    data_dir: Path = Field(default_factory=Path.cwd, description="where the SQLite file and key live")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    secret_key: str | None = Field(default=None, description="Fernet key for directory secrets")
    log_format: str = Field(default="console", description="console or json")
    http_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="seconds a provider's HTTP API may take to answer one request before it is retried",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'accessiq.db'}"

    # Sign-in throttling and /metrics access (issue #9).
    sign_in_max_failures: int = Field(default=5, ge=1, description="failed sign-ins per account before a lockout")
    sign_in_max_failures_per_address: int = Field(
        default=20, ge=1, description="failed sign-ins per client address before a lockout"
    )
    sign_in_window_seconds: int = Field(
        default=900, ge=1, description="window in which failures count, and how long a lockout lasts"
    )
    metrics_auth: str = Field(
        default="auto",
        pattern="^(auto|token|open)$",
        description="/metrics needs an API token: token, open, or auto (when serving on a non-loopback address)",
    )

    # What directories made through the API or the web UI may reach (SPEC §6 "Who may do what").
    # Lists are comma-separated in the environment.
    allowed_secret_refs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="secret reference prefixes the API and UI honour, e.g. env:AIQ_,file:/run/secrets/",
    )
    allowed_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="provider endpoint origins the API and UI accept besides the public ones, e.g. "
        "https://login.microsoftonline.de,http://127.0.0.1:*",
    )
    snapshot_dir: Path | None = Field(
        default=None, description="where `file` directories made through the API or UI read; default data_dir/snapshots"
    )

    @field_validator("allowed_secret_refs", "allowed_endpoints", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("allowed_secret_refs")
    @classmethod
    def _secret_ref_prefixes(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.startswith(("env:", "file:")):
                raise ValueError(f"{entry!r} must start with env: or file: (e.g. env:AIQ_ or file:/run/secrets/)")
            if entry.startswith("file:") and not Path(entry[5:]).is_absolute():
                raise ValueError(f"{entry!r} must name an absolute directory, e.g. file:/run/secrets/")
        return value

    @field_validator("allowed_endpoints")
    @classmethod
    def _endpoint_origins(cls, value: list[str]) -> list[str]:
        EndpointAllowList.parse(value)  # a ValueError names the bad entry
        return value

    @property
    def endpoint_allow_list(self) -> EndpointAllowList:
        return EndpointAllowList.parse(self.allowed_endpoints)

    @property
    def resolved_snapshot_dir(self) -> Path:
        return self.snapshot_dir or self.data_dir / "snapshots"


def normalize_database_url(url: str) -> str:
    """Accept the libpq spelling `postgresql://` and use psycopg 3 for it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
