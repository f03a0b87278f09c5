"""Every knob of the service, read once from the environment (prefix ``CRM_``)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started under data_dir.",
    )
    data_dir: Path = Path(".crm-data")
    pool_min_size: int = Field(default=2, ge=1)
    pool_size: int = Field(default=20, ge=1)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    cors_origins: list[str] = Field(default_factory=list)
    docs_enabled: bool = True
    access_log: bool = True
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a verified API key is trusted per process before it is re-read.",
    )
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    bootstrap_admin_key: bool = Field(
        default=True, description="Create and print an admin API key when none exists."
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if not self.database_url:
            problems.append(
                "CRM_DATABASE_URL must be set (the embedded database is for development)"
            )
        if "*" in self.cors_origins:
            problems.append("CRM_CORS_ORIGINS must list origins, not '*'")
        if self.bootstrap_admin_key:
            problems.append("CRM_BOOTSTRAP_ADMIN_KEY must be false (create keys with the CLI)")
        if problems:
            raise ValueError("unsafe production configuration: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
