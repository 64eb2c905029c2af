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
from typing import Any

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


def _scope(nodeid: str) -> str | None:
    """The browser tests share one platform per session (started on fixed ports): one unit."""
    return "tests/browser" if nodeid.startswith("tests/browser/") else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test`'s `--dist loadfile`, with the browser directory as one unit besides files.

    xdist's own `loadgroup` marks do not work with pytest 9.2 (xdist renames the node ids
    through an attribute pytest no longer reads), so the unit is chosen here instead.
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid) or super()._split_scope(nodeid)

    return BrowserTogether(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the browser tests first: the longest unit, sent while the other
    worker takes the files one by one (the scheduler hands out units in collection order)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: _scope(item.nodeid) is None)  # stable: the rest keep order


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
