"""Test fixtures: a real PostgreSQL, migrated by the real Alembic histories.

Each test gets its own database, cloned from a migrated template (`CREATE DATABASE ...
TEMPLATE`), so tests are isolated without rolling back what a request committed. The server
is `TEST_DATABASE_URL` when set (CI: the machine's PostgreSQL) or else the embedded one.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from joserfc.jwk import KeySet

from shared.auth.keys import generate_key
from shared.auth.tokens import TokenIssuer
from shared.components import COMPONENTS
from shared.db import asyncpg_url
from shared.migrations import upgrade
from shared.pg import (
    admin_execute,
    embedded_running,
    embedded_url,
    other_database,
    stop_embedded,
)
from tests.platform import Platform

ISSUER = "innovation-points-gateway"


# Where the embedded server keeps its data when no TEST_DATABASE_URL is set.
EMBEDDED_DATA = Path(os.environ.get("IP_TEST_PGDATA", "var/pgdata"))


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield asyncpg_url(url)
        return
    # Nothing configured: the embedded server. A session that started it stops it at the end,
    # so no stray server is left behind; one already running (`make run`) is left alone.
    started_here = not embedded_running(EMBEDDED_DATA)
    yield embedded_url(EMBEDDED_DATA)
    if started_here:
        stop_embedded(EMBEDDED_DATA)


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    name = f"ip_tmpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    url = other_database(admin_url, name)
    for comp in COMPONENTS:
        directory = comp.migrations_dir() if comp.available() else None
        if directory is not None and comp.schema is not None:
            upgrade(directory, url, comp.schema)
    yield name
    asyncio.run(admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"ip_t_{uuid.uuid4().hex[:12]}"
    await admin_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield other_database(admin_url, name)
    await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer(KeySet([generate_key()]), ISSUER)


@pytest.fixture
async def platform(database_url: str, issuer: TokenIssuer) -> AsyncIterator[Platform]:
    p = Platform(database_url=database_url, issuer=issuer)
    try:
        yield p
    finally:
        await p.stop_all()
