"""Settings shared by every Comptaflow process, read once in the composition root.

Every variable is prefixed `COMPTAFLOW_` (docs/api.md, Settings). Nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMPTAFLOW_", extra="forbid", frozen=True)

    home: Path = Path("./var")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    jwt_secret: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        default=None,
        description="Keys of the tenant secrets at rest: `kid:key` entries, comma-separated, the first encrypts"
        " (comptaflow.common.secrets); `comptaflow up` generates one into COMPTAFLOW_HOME when unset.",
    )

    amqp_url: SecretStr | None = None
    database_url: SecretStr | None = None
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "comptaflow"
    s3_region: str = "us-east-1"
    clickhouse_url: str | None = None
    # Where Power BI reaches the database with a tenant's read-only login (POST …/bi-credentials).
    bi_host: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Host given with a tenant's BI login; unset: the host of COMPTAFLOW_DATABASE_URL.",
    )
    bi_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port given with a tenant's BI login; unset: the port of COMPTAFLOW_DATABASE_URL (5432).",
    )

    max_upload_mb: int = Field(default=512, ge=1)
    # Uploads: a body that stops arriving for this long is answered 408; uploads in flight at once, per
    # tenant and in all, beyond which a new one is answered 429 with Retry-After (docs/api.md, Upload refusals).
    upload_idle_s: float = Field(default=60.0, gt=0)
    max_uploads_per_tenant: int = Field(default=4, ge=1)
    max_uploads: int = Field(default=64, ge=1)
    # Parsing an uploaded file happens in a child process under these budgets (address space, wall clock):
    # over either, the batch fails with FILE_TOO_COMPLEX naming the budget.
    parse_memory_mb: int = Field(default=3072, ge=256)
    parse_timeout_s: float = Field(default=300.0, gt=0)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_max: int = Field(default=10, ge=1)

    # Messaging: how many times a message may be delivered before it is dead-lettered, and how many
    # messages one worker handles at once.
    delivery_limit: int = Field(default=5, ge=1)
    worker_prefetch: int = Field(default=2, ge=1)
    # On SIGINT/SIGTERM, how long in-flight messages may go on before they are cancelled and handed back.
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # Backups kept per period (the newest): older ones lose their warehouse rows and files.
    backups_keep: int = Field(default=10, ge=1)
    # Days the uploaded files (and staged tables) of a FAILED batch are kept (comptaflow.common.housekeeping).
    failed_retention_days: int = Field(default=30, ge=1)
    # Pennylane sync (docs/pennylane.md): the schedule (an incremental every `pennylane_interval_min`, a full
    # reload daily at `pennylane_full_at` in `pennylane_timezone`, tenants spread over `pennylane_spread_min`),
    # the changelog overlap, tables synced at once per tenant, and the API's rate limit per token.
    pennylane_schedule: bool = True
    pennylane_interval_min: int = Field(default=120, ge=5)
    pennylane_full_at: str = Field(default="03:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    pennylane_timezone: str = "Europe/Paris"
    pennylane_spread_min: int = Field(default=60, ge=0)
    pennylane_overlap_s: float = Field(default=300.0, ge=0)
    pennylane_concurrency: int = Field(default=3, ge=1, le=16)
    pennylane_rate_limit: int = Field(default=25, ge=1)
    pennylane_rate_window_s: float = Field(default=5.0, gt=0)
    # Keep freed memory in the process between batches (glibc): the next large file reuses it without page
    # faults, at the price of a higher, kept resident size (comptaflow.common.memory). Off by default.
    retain_heap: bool = False
    # Port of the worker health/metrics endpoint under `comptaflow serve <worker>` (0 = none).
    health_port: int = Field(default=8001, ge=0, le=65535)
    # Services declared outside the installed packages (`module:attribute` of a ServiceSpec, comma-separated),
    # added to those registered under the `comptaflow.services` entry points (comptaflow.common.registry).
    extra_services: str = ""

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024
