"""Every knob of the service, read once from the environment (prefix ``CRM_``)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, IPvAnyNetwork, model_validator
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
    graphql_ide: bool | None = Field(
        default=None, description="Serve GraphiQL at GET /graphql. Unset: in development only."
    )
    graphql_introspection: bool | None = Field(
        default=None, description="Answer introspection queries. Unset: in development only."
    )
    graphql_max_depth: int = Field(
        default=15, ge=1, description="Deepest nesting of fields an operation may select."
    )
    graphql_max_aliases: int = Field(default=30, ge=0, description="Aliases per operation.")
    graphql_max_tokens: int = Field(
        default=5000, ge=100, description="Lexical tokens (comments included) per document."
    )
    graphql_max_cost: int = Field(
        default=200_000,
        ge=1,
        description=(
            "Estimated work of an operation: each field counts 1, and a page or list "
            "multiplies what it selects by its size (`first` or its default; 10 for a list "
            "without one)."
        ),
    )
    access_log: bool = True
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector to send traces to (needs the otel extra); unset: off.",
    )
    otel_service_name: str = "crm-api"
    body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a client may take to send a request body before a 408.",
    )
    # Longer than clients and proxies keep idle connections (httpx 5 s, load balancers
    # 60 s): a server closing first races the client's next request on that connection,
    # which then fails without an answer.
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description="How long an idle HTTP keep-alive connection is kept open.",
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a verified API key is trusted per process before it is re-read.",
    )
    rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        le=1_000_000_000,
        description=(
            "Requests per minute an API key may make, unless the key sets its own; "
            "0 switches rate limiting off for every key."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis holding the shared rate-limit buckets. Unset: PostgreSQL holds them.",
    )
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    webhook_retry_schedule_seconds: list[float] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        min_length=1,
        description="Delay before each delivery attempt (Standard Webhooks' schedule).",
    )
    webhook_retry_jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Each delay varies by up to this share."
    )
    webhook_disable_after_failures: int = Field(
        default=100, ge=1, description="Consecutive failed attempts that disable an endpoint."
    )
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="Total time for one attempt, connect included."
    )
    webhook_secret_grace_hours: float = Field(
        default=24.0, ge=0, description="How long a rotated-out secret keeps signing."
    )
    webhook_block_private_networks: bool | None = Field(
        default=None,
        description=(
            "Refuse endpoint addresses in private, loopback, link-local and metadata ranges. "
            "Unset: on in production only."
        ),
    )
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="CIDR ranges exempt from that refusal (development and tests).",
    )
    churn_risk_threshold: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Churn probability from which a customer counts as at risk.",
    )
    sentiment_negative_threshold: float = Field(
        default=-0.5,
        ge=-1,
        le=1,
        description="Sentiment score of a feedback below which `feedback.negative` is emitted.",
    )
    schedule_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description=(
            "How often the worker runs its periodic jobs: loyalty expiry and re-tiering, "
            "automatic lifecycle transitions, the roll-up of the KPIs' daily totals."
        ),
    )
    recommendation_refresh_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "How old the stored recommendation rules may get before the worker mines them "
            "again from all purchases (checked on the worker's schedule)."
        ),
    )
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    worker_concurrency: int = Field(
        default=64, ge=1, le=1000, description="Deliveries in flight at once per worker."
    )
    worker_in_process: bool | None = Field(
        default=None,
        description="`serve` also runs a worker. Unset: only with the embedded database.",
    )
    bootstrap_admin_key: bool = Field(
        default=True, description="Create and print an admin API key when none exists."
    )

    @property
    def graphql_ide_enabled(self) -> bool:
        return self._in_development_unless(self.graphql_ide)

    @property
    def graphql_introspection_enabled(self) -> bool:
        return self._in_development_unless(self.graphql_introspection)

    def _in_development_unless(self, setting: bool | None) -> bool:
        return self.environment is Environment.DEVELOPMENT if setting is None else setting

    @property
    def blocks_private_networks(self) -> bool:
        if self.webhook_block_private_networks is None:
            return self.environment is Environment.PRODUCTION
        return self.webhook_block_private_networks

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
