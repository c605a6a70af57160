"""The long-running commands: `up`, `serve`, `migrate`."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

from pydantic import SecretStr

from comptaflow.cli.embedded import EmbeddedPostgres, EmbeddedS3
from comptaflow.cli.runtime import HttpServer, bind_socket, stop_event_on_signals
from comptaflow.common import db
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.infra import open_infra
from comptaflow.common.logging import get_logger
from comptaflow.common.outbox import OutboxRelay, reannounce_unfinished
from comptaflow.common.registry import Registry, discover
from comptaflow.common.service import ServiceSpec
from comptaflow.common.settings import Settings
from comptaflow.common.worker import Worker, serve_worker

log = get_logger("comptaflow.cli")


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
    """Every registered service in one process; embedded PostgreSQL and S3 unless their URLs are set."""
    registry = discover(settings.extra_services)
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    try:
        sock = bind_socket(settings.http_host, settings.http_port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}") from exc
    stop = stop_event_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sock.close)
        settings = await _embedded_infrastructure(settings, home, stack)
        infra = await stack.enter_async_context(
            open_infra(settings, service="up", run_migrations=True, registry=registry)
        )
        if isinstance(infra.bus, MemoryBus):
            # In-memory queues did not survive the last stop: announce unfinished batches again (those
            # whose validation was started delivery_limit times already are failed instead).
            await reannounce_unfinished(infra.db, limit=settings.delivery_limit)
        # One relay for the process: every service here writes the same outbox.
        relay = OutboxRelay(infra.db, infra.bus)
        await relay.start()
        stack.push_async_callback(relay.stop)
        work_dir = home / "tmp"
        work_dir.mkdir(exist_ok=True)
        grace = settings.shutdown_grace_s
        for spec in registry.workers:
            worker = Worker(spec, infra, work_dir=work_dir, relay=False)
            await worker.start()
            stack.push_async_callback(functools.partial(worker.stop, grace=grace))
        assert settings.jwt_secret is not None
        (front,) = [spec for spec in registry if spec.role == "http"]
        app = front.load_factory()(infra, jwt_secret=settings.jwt_secret.get_secret_value(), relay=False)
        http = HttpServer(app, host=settings.http_host, port=settings.http_port, sock=sock)
        port = await http.start()
        stack.push_async_callback(http.stop)
        print(f"comptaflow ready http://{settings.http_host}:{port}", flush=True)
        await stop.wait()
        log.info("shutting_down")
    return 0


async def _embedded_infrastructure(settings: Settings, home: Path, stack: contextlib.AsyncExitStack) -> Settings:
    """Start embedded PostgreSQL and S3 (and name an in-process ClickHouse) for what has no URL."""
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
    return settings.model_copy(update=updates)


async def serve(settings: Settings, registry: Registry, spec: ServiceSpec, *, jwt_secret: str) -> int:
    """One registered service (`spec`, of `registry`, whose topology it declares) in this process."""
    name = spec.name
    stop = stop_event_on_signals()
    async with open_infra(settings, service=name, run_migrations=spec.role == "http", registry=registry) as infra:
        if spec.role == "http":
            http = HttpServer(
                spec.load_factory()(infra, jwt_secret=jwt_secret), host=settings.http_host, port=settings.http_port
            )
            port = await http.start()
            log.info("http_listening", service=name, port=port)
            await stop.wait()
            await http.stop()
            return 0
        work_dir = settings.home / "tmp" if settings.home.exists() else None
        await serve_worker(spec, infra, stop=stop, work_dir=work_dir)
    return 0
