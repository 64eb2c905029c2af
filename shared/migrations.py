"""Alembic, one history per service, each in its own schema.

Each service keeps `migrations/` (env.py calls `run_env`) and its version table inside its
schema, so the services share a database server without sharing tables. An advisory lock
serialises concurrent upgrades (several replicas, or a Job racing a developer).
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import asyncpg_url

FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(slug)s_%%(rev)s"


def alembic_config(migrations_dir: Path, url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("file_template", FILE_TEMPLATE)
    cfg.set_main_option("sqlalchemy.url", asyncpg_url(url).replace("%", "%%"))
    cfg.attributes["schema"] = schema
    return cfg


def known_revisions(migrations_dir: Path) -> set[str]:
    """Every revision this code knows: a database at one it does not know is ahead of it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    return {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}


def head_revisions(migrations_dir: Path) -> set[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    return set(ScriptDirectory.from_config(cfg).get_heads())


def upgrade(migrations_dir: Path, url: str, schema: str, revision: str = "head") -> None:
    """Upgrade; safe to call from inside a running event loop (runs in its own thread)."""
    cfg = alembic_config(migrations_dir, url, schema)
    error: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(cfg, revision)
        except BaseException as exc:
            error.append(exc)

    t = threading.Thread(target=run, name=f"migrate-{schema}")
    t.start()
    t.join()
    if error:
        raise error[0]


def _do_run(connection: Connection, metadata: MetaData, schema: str) -> None:
    lock_id = zlib.crc32(f"migrate:{schema}".encode())
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
    try:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})


async def _run_online(url: str, metadata: MetaData, schema: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_do_run, metadata, schema)
    finally:
        await engine.dispose()


def run_env(metadata: MetaData) -> None:
    """The body of every service's env.py."""
    cfg = context.config
    schema = str(cfg.attributes.get("schema") or metadata.schema)
    url = cfg.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata, schema))
