"""Scratch databases for the migration tests: a component's schema at an older revision."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from shared.migrations import upgrade
from shared.pg import admin_execute, other_database


@asynccontextmanager
async def database_at(
    admin_url: str, migrations: Path, schema: str, revision: str
) -> AsyncIterator[str]:
    """A fresh database with `schema` migrated up to `revision` only, dropped afterwards."""
    name = f"ip_t_{uuid.uuid4().hex[:12]}"
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    url = other_database(admin_url, name)
    try:
        await asyncio.to_thread(upgrade, migrations, url, schema, revision)
        yield url
    finally:
        await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
