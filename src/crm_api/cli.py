"""The ``crm-api`` command: serve, migrate, manage keys, export the API contract."""

import asyncio
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from pydantic import ValidationError

from crm_api import migrate as migrations
from crm_api import transaction_clock
from crm_api import worker as background
from crm_api.analytics import daily_totals, stored_rules
from crm_api.api_keys import service as api_keys
from crm_api.api_keys.schemas import ApiKeyCreate
from crm_api.app import create_app
from crm_api.config import Settings, get_settings
from crm_api.core import embedded_pg, logs
from crm_api.core.db import Database
from crm_api.core.errors import NotFound
from crm_api.core.scopes import Scope
from crm_api.graphql.schema import schema
from crm_api.loyalty import jobs as loyalty_jobs

app = typer.Typer(help="crm-api: a headless CRM over REST and GraphQL.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
loyalty_app = typer.Typer(help="Loyalty jobs on demand.", no_args_is_help=True)
app.add_typer(loyalty_app, name="loyalty")
analytics_app = typer.Typer(help="Analytics jobs on demand.", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
T = TypeVar("T")
_keep_alive: list[Any] = []  # the embedded server runs while the CLI process holds it


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        typer.echo(f"Refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None


def _database_url(settings: Settings) -> str:
    """The configured database, or the embedded one (started now, stopped when we exit)."""
    if settings.database_url:
        return settings.database_url

    server, url = embedded_pg.start(settings.data_dir)
    _keep_alive.append(server)
    os.environ["CRM_DATABASE_URL"] = url  # server workers inherit it
    get_settings.cache_clear()
    typer.echo(f"Using the embedded PostgreSQL in {settings.data_dir.resolve()}", err=True)
    return url


async def _connect(url: str, *, max_size: int) -> Database:
    """The database, with its transaction numbering kept ahead as every process starts."""
    db = await Database.connect(url, min_size=1, max_size=max_size)
    try:
        async with db.connection() as conn:
            await transaction_clock.keep_ahead(conn)
    except BaseException:
        await db.close()
        raise
    return db


async def _keep_ahead(url: str) -> None:
    db = await _connect(url, max_size=1)
    await db.close()


def _with_connection(url: str, work: Callable[[Any], Awaitable[T]]) -> T:

    async def run() -> T:
        db = await _connect(url, max_size=1)
        try:
            async with db.transaction() as conn:
                return await work(conn)
        finally:
            await db.close()

    return asyncio.run(run())


def _bootstrap_admin_key(url: str) -> None:

    async def bootstrap(conn: Any) -> str | None:
        # One starter at a time, so two processes cannot both mint a key.
        await conn.execute("SELECT pg_advisory_xact_lock(7254119)")
        if await api_keys.has_usable_admin(conn):
            return None
        created = await api_keys.create_key(
            conn, None, ApiKeyCreate(name="bootstrap admin", scopes=[Scope.ADMIN])
        )
        return created.key

    key = _with_connection(url, bootstrap)
    if key:
        typer.echo(
            "\nNo admin API key existed, so one was created. It is shown only this once:\n\n"
            f"    {key}\n\nUse it as `Authorization: Bearer <key>`; create narrower keys with it.\n"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (CRM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (CRM_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = True,
) -> None:
    """Serve the API (REST, GraphQL, docs)."""
    settings = _settings()
    url = _database_url(settings)
    if migrate:
        migrations.upgrade(url)
    if settings.bootstrap_admin_key:
        _bootstrap_admin_key(url)
    in_process = settings.worker_in_process
    if in_process is None and not settings.database_url:  # zero-config: one process does all
        os.environ["CRM_WORKER_IN_PROCESS"] = "true"
        get_settings.cache_clear()
    if workers > 1:
        _share_metrics()
    # uvicorn re-raises the signal that stopped it once it has shut down; exiting through
    # Python instead of the default action lets the embedded database stop cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "crm_api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=20,
    )


def _share_metrics() -> None:
    """Let the server processes sum their request counts for /metrics: a folder of their
    own, emptied now (counts of an earlier run must not add up), set before they start."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="crm-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


@app.command()
def worker(
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = True,
) -> None:
    """Run the background worker: webhook deliveries and housekeeping. Run several side by
    side for more throughput; they share the work through the database."""
    settings = _settings()
    url = _database_url(settings)
    if migrate:
        migrations.upgrade(url)
    logs.configure(settings.log_level)
    asyncio.run(background.serve_forever(_settings()))


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head).

    At head it also moves the transaction numbering past a restored copy's, as every
    process does as it starts: run by the schema's owner, it works where the serving role
    may not replace the numbering function."""
    url = _database_url(_settings())
    migrations.upgrade(url, revision)
    if revision == "head":
        asyncio.run(_keep_ahead(url))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[list[Scope], typer.Option(help="A scope; repeat for several.")],
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            help="Expiry (ISO 8601; UTC unless it carries an offset).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    rate_limit_per_minute: Annotated[
        int | None,
        typer.Option(
            help="The key's own rate limit; unset: the server's CRM_RATE_LIMIT_PER_MINUTE."
        ),
    ] = None,
) -> None:
    """Create an API key and print it (shown only once)."""
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    try:
        data = ApiKeyCreate(
            name=name,
            scopes=scope,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))} {e['msg']}" for e in exc.errors())
        typer.echo(f"Refusing to create the key: {problems}", err=True)
        raise typer.Exit(2) from None
    created = _with_connection(
        _database_url(_settings()), lambda conn: api_keys.create_key(conn, None, data)
    )
    typer.echo(created.key)


@keys_app.command("list")
def keys_list() -> None:
    """List usable keys (never their secrets)."""
    keys, _ = _with_connection(
        _database_url(_settings()),
        lambda conn: api_keys.list_keys(conn, include_revoked=False, cursor=None, limit=200),
    )
    for key in keys:
        typer.echo(f"{key.id}  {key.prefix}...  {key.name}  {' '.join(key.scopes)}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key."""
    try:
        _with_connection(_database_url(_settings()), lambda c: api_keys.revoke_key(c, key_id))
    except NotFound as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {key_id}")


def _run_job(job: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run one of the worker's jobs now; answers what it answers."""
    settings = _settings()
    url = _database_url(settings)

    async def run() -> T:
        db = await _connect(url, max_size=2)
        try:
            return await job(db, settings)
        finally:
            await db.close()

    return asyncio.run(run())


@loyalty_app.command("expire")
def loyalty_expire() -> None:
    """Expire every lot of points past its expiry now (the worker does so on its schedule)."""
    typer.echo(f"expired points in {_run_job(loyalty_jobs.expire_due)} account(s)")


@loyalty_app.command("retier")
def loyalty_retier() -> None:
    """Re-evaluate the tiers of accounts due a review now (the worker does so on its schedule)."""
    typer.echo(f"changed the tier of {_run_job(loyalty_jobs.retier_due)} account(s)")


@analytics_app.command("refresh-rules")
def analytics_refresh_rules() -> None:
    """Mine the recommendation rules and item popularity from all purchases now (the worker
    does so on its schedule); waits for a refresh already running, then refreshes."""

    async def refresh(db: Database, settings: Settings) -> list[stored_rules.Refreshed]:
        done = await stored_rules.refresh(db.pool, older_than=timedelta(0), wait=True)
        assert done is not None  # a zero age is always due
        return done

    levels = _run_job(refresh)
    for level in levels:
        typer.echo(f"{level.level.value}: {level.rules} rules over {level.baskets} baskets")
    typer.echo(f"both levels mined and stored in {levels[0].seconds:.1f} s")


@analytics_app.command("roll-totals")
def analytics_roll_totals(
    rebuild: Annotated[
        bool,
        typer.Option(
            help="Start over from all history, as after restoring a logical dump (pg_dump) "
            "into a new cluster that something wrote to before the service started."
        ),
    ] = False,
) -> None:
    """Roll what was written since the last roll up into the KPIs' daily totals now (the
    worker does so on its schedule), e.g. after loading history straight into the tables."""

    async def job(db: Database, settings: Settings) -> int:
        async with db.connection() as conn:
            return await (daily_totals.rebuild if rebuild else daily_totals.roll)(conn)

    typer.echo(f"updated {_run_job(job)} day(s) and currency(ies)")


@app.command("export-openapi")
def export_openapi(
    out: Annotated[Path, typer.Option(help="Folder for openapi.json and schema.graphql.")] = Path(
        "openapi"
    ),
) -> None:
    """Write the OpenAPI document and the GraphQL SDL (the committed API contract)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = create_app(Settings(database_url="postgresql://unused/")).openapi()
    (out / "openapi.json").write_text(json.dumps(spec, indent=2, sort_keys=False) + "\n")
    (out / "schema.graphql").write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {out}/openapi.json and {out}/schema.graphql")
