"""Test fixtures: a real PostgreSQL, migrated by the real Alembic histories.

Each test gets its own database, cloned from a migrated template (`CREATE DATABASE ...
TEMPLATE`), so tests are isolated without rolling back what a request committed. The server
is `TEST_DATABASE_URL` when set (CI: the machine's PostgreSQL) or else the embedded one.

Cloning and dropping a database cost 0.3-1.3 s each on this machine (WAL-logged copy of ~10 MB
of catalogs, more under load), paid by ~280 tests: a background thread clones the next
databases while a test runs and drops the used ones after it (`DatabasePool`), so a test waits
for neither unless the thread falls behind.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
_STARTED_EMBEDDED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """With no `TEST_DATABASE_URL`, the controller starts the embedded server once and hands
    its URL to the xdist workers (they inherit the environment), rather than each worker racing
    to start the same data directory."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TEST_DATABASE_URL"):
        return
    if config.getoption("numprocesses", default=None):
        config.stash[_STARTED_EMBEDDED] = not embedded_running(EMBEDDED_DATA)
        os.environ["TEST_DATABASE_URL"] = embedded_url(EMBEDDED_DATA)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_STARTED_EMBEDDED, False):
        stop_embedded(EMBEDDED_DATA)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (`make test`), what shares a fixture wider than a test stays on one worker: a
    module's tests together, and the browser tests, whose session starts a whole platform on
    fixed ports, as one group sent first (the longest unit, so the other worker balances it)."""
    if config.getoption("dist", default="no") == "no":
        return

    def group(item: pytest.Item) -> str:
        path = str(item.path).replace("\\", "/")
        return "browser" if "/tests/browser/" in path else path

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=lambda item: group(item) != "browser")  # stable: the rest keep their order


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


class DatabasePool:
    """Fresh clones of the template made ahead, and used ones dropped, by one background thread.

    One thread, so clones and drops never compete with each other for the server; `AHEAD`
    clones are kept ready. Every clone is new and unused when handed out (never recycled), so a
    test sees exactly what a fresh `CREATE DATABASE ... TEMPLATE` gives.
    """

    AHEAD = 2

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases")
        self.ready: deque[tuple[str, Future[None]]] = deque()
        self.dropping: list[Future[None]] = []

    def _run(self, sql: str) -> None:
        asyncio.run(admin_execute(self.admin_url, sql))

    def _clone_ahead(self) -> None:
        while len(self.ready) < self.AHEAD:
            name = f"ip_t_{uuid.uuid4().hex[:12]}"
            sql = f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'
            self.ready.append((name, self.thread.submit(self._run, sql)))

    async def take(self) -> str:
        self._clone_ahead()
        name, made = self.ready.popleft()
        self._clone_ahead()
        await asyncio.wrap_future(made)  # a failed clone fails the test that needed it
        return name

    def give_back(self, name: str) -> None:
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        self.dropping.append(self.thread.submit(self._run, sql))

    def close(self) -> None:
        """Drop what is left (clones never handed out included); fail if a drop failed."""
        for name, made in self.ready:
            if made.exception() is None:
                self.give_back(name)
        self.ready.clear()
        self.thread.shutdown(wait=True)
        for dropped in self.dropping:
            dropped.result()


@pytest.fixture(scope="session")
def database_pool(admin_url: str, template_db: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(admin_url, template_db)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
async def database_url(admin_url: str, database_pool: DatabasePool) -> AsyncIterator[str]:
    name = await database_pool.take()
    try:
        yield other_database(admin_url, name)
    finally:
        database_pool.give_back(name)


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
