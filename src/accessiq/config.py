"""Settings from the environment (`ACCESSIQ_*`): the product's one home for configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process settings. Directory settings live in the store, not here."""

    model_config = SettingsConfigDict(env_prefix="ACCESSIQ_", extra="ignore")

    data_dir: Path = Field(default_factory=Path.cwd, description="where the SQLite file and key live")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    secret_key: str | None = Field(default=None, description="Fernet key for directory secrets")
    log_format: str = Field(default="console", description="console or json")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'accessiq.db'}"


def normalize_database_url(url: str) -> str:
    """Accept the libpq spelling `postgresql://` and use psycopg 3 for it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
