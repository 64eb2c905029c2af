"""The database URL: the configured one, or a private embedded PostgreSQL.

With no URL configured (a fresh machine, `make run` or `make test` with nothing set) the
platform starts a real PostgreSQL 16 from the `pgserver` wheel with its data under
`var/pgdata`, listening on a Unix socket only. Only for development and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

_servers: dict[Path, Any] = {}


def embedded_url(data_dir: Path, database: str = "postgres") -> str:
    """Start (or reuse) the embedded server and return a SQLAlchemy asyncpg URL."""
    from pgserver import postgres_server

    data_dir = data_dir.resolve()
    server = _servers.get(data_dir)
    if server is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: pgserver would otherwise stop it at interpreter exit, even when
        # another process still uses it. Whoever started it stops it (`make run` on Ctrl-C,
        # the test session at its end; see `embedded_running`); the data stays, so the next
        # start takes 0.1 s instead of an initdb.
        server = postgres_server.get_server(data_dir, cleanup_mode=None)
        _servers[data_dir] = server
    uri: str = server.get_uri(database)
    return to_asyncpg(uri)


def to_asyncpg(uri: str) -> str:
    """pgserver gives `postgresql://user:@/db?host=/sock`; asyncpg wants the same, typed."""
    parsed = urlparse(uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    user = parsed.username or "postgres"
    db = parsed.path.lstrip("/") or "postgres"
    if host:
        return f"postgresql+asyncpg://{user}@/{db}?host={host}"
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def resolve_database_url(configured: str | None, var_dir: Path) -> str:
    if configured:
        from shared.db import asyncpg_url

        return asyncpg_url(configured)
    return embedded_url(var_dir / "pgdata")


def embedded_running(data_dir: Path) -> bool:
    """Whether an embedded server of `data_dir` is running (its postmaster is alive)."""
    import os

    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by pgserver's system user
        return True
    return True


def stop_embedded(data_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the embedded server of `data_dir` (fast shutdown); False if none was running."""
    import os
    import signal
    import time

    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown: roll back, then stop.
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def other_database(url: str, name: str) -> str:
    """The same server's URL for database `name` (query options such as `host=` kept)."""
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def admin_execute(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on a fresh connection."""
    import asyncpg

    from shared.db import plain_url

    conn = await asyncpg.connect(plain_url(url))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()
