"""The long-running commands: `up`, `serve`, `migrate`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from comptaflow.cli.embedded import EmbeddedPostgres, EmbeddedS3
from comptaflow.cli.runtime import HttpServer, bind_socket, stop_event_on_signals
from comptaflow.common import db
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.health import HealthServer
from comptaflow.common.infra import open_infra
from comptaflow.common.logging import get_logger
from comptaflow.common.outbox import reannounce_unfinished
from comptaflow.common.settings import Settings

log = get_logger("comptaflow.cli")


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self, *, grace: float = 30.0) -> None: ...


async def migrate(settings: Settings) -> int:
    if settings.database_url is None:
        print("comptaflow migrate: COMPTAFLOW_DATABASE_URL is not set", file=sys.stderr)
        return 2
    pool = await db.create_pool(settings.database_url.get_secret_value(), max_size=1)
    try:
        applied = await db.migrate(pool)
    finally:
        await pool.close()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


async def up(settings: Settings) -> int:
    """Everything in one process; embedded PostgreSQL and S3 unless their URLs are set."""
    from comptaflow.gateway.app import create_app
    from comptaflow.loader.app import Loader
    from comptaflow.period_validator.app import PeriodValidator

    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    try:
        sock = bind_socket(settings.http_host, settings.http_port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}") from exc
    stop = stop_event_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sock.close)
        updates: dict[str, object] = {"home": home}
        if settings.database_url is None:
            postgres = EmbeddedPostgres(home / "postgres")
            stack.callback(postgres.stop)
            updates["database_url"] = SecretStr(postgres.start())
            log.info("embedded_postgres_started", data=str(home / "postgres"))
        if settings.s3_endpoint is None:
            s3 = EmbeddedS3(home / "s3")
            stack.callback(s3.stop)
            endpoint = await s3.start()
            updates |= {
                "s3_endpoint": endpoint.endpoint,
                "s3_access_key": SecretStr(endpoint.access_key),
                "s3_secret_key": SecretStr(endpoint.secret_key),
            }
            log.info("embedded_s3_started", endpoint=endpoint.endpoint)
        if settings.clickhouse_url is None:
            # In-process ClickHouse (chdb): one path per process, shared by the loader and the gateway.
            updates["clickhouse_url"] = f"chdb://{home / 'clickhouse'}"
        settings = settings.model_copy(update=updates)
        infra = await stack.enter_async_context(open_infra(settings, service="up", run_migrations=True))
        if isinstance(infra.bus, MemoryBus):
            # In-memory queues did not survive the last stop: announce unfinished batches again (those
            # whose validation was started delivery_limit times already are failed instead).
            await reannounce_unfinished(infra.db, limit=settings.delivery_limit)
        work_dir = home / "tmp"
        work_dir.mkdir(exist_ok=True)
        validator = PeriodValidator(infra, work_dir=work_dir)
        await validator.start()
        grace = settings.shutdown_grace_s
        stack.push_async_callback(lambda: validator.stop(grace=grace))
        loader = Loader(infra)
        await loader.start()
        stack.push_async_callback(lambda: loader.stop(grace=grace))
        assert settings.jwt_secret is not None
        http = HttpServer(
            create_app(infra, jwt_secret=settings.jwt_secret.get_secret_value()),
            host=settings.http_host,
            port=settings.http_port,
            sock=sock,
        )
        port = await http.start()
        stack.push_async_callback(http.stop)
        print(f"comptaflow ready http://{settings.http_host}:{port}", flush=True)
        await stop.wait()
        log.info("shutting_down")
    return 0


async def serve(settings: Settings, service: str, *, jwt_secret: str) -> int:
    stop = stop_event_on_signals()
    async with open_infra(settings, service=service, run_migrations=service == "gateway") as infra:
        if service == "gateway":
            from comptaflow.gateway.app import create_app

            http = HttpServer(
                create_app(infra, jwt_secret=jwt_secret), host=settings.http_host, port=settings.http_port
            )
            port = await http.start()
            log.info("gateway_listening", port=port)
            await stop.wait()
            await http.stop()
            return 0
        worker: Worker
        if service == "loader":
            from comptaflow.loader.app import Loader

            worker = Loader(infra)
        else:
            from comptaflow.period_validator.app import PeriodValidator

            worker = PeriodValidator(infra, work_dir=Path(settings.home) / "tmp" if settings.home.exists() else None)
        health = HealthServer(host=settings.http_host, port=settings.health_port, readiness=infra.readiness)
        await health.start()
        await worker.start()
        log.info("worker_started", service=service, health_port=health.port)
        await stop.wait()
        await worker.stop(grace=settings.shutdown_grace_s)
        await health.stop()
    return 0
