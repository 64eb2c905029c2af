"""What the credit service's hot reads share: their connections, their per-process state, and
how they answer.

Each hot read (the offers, the approved amounts, the applications list, the statistics) is
one statement on a plain asyncpg connection (`shared.connections`), its JSON written by
orjson: the profiles of issue 11 put the offers' time in SQLAlchemy (three ORM statements,
each through the session, the ORM's compilation and result processing, greenlet switches)
and in the socket writes of three round trips. The documents are the routes' own, byte for
byte (tests compare the two for every case they take), and whatever a hot read declines or
fails at goes to the route, which answers as it always did, its errors included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Scope

from shared.connections import Connections
from shared.db import plain_url

# pydantic writes a UTC datetime with "Z", as orjson does with this option; floats, ints and
# strings are written alike by both (a test holds them equal on the documents).
_OPTIONS = orjson.OPT_UTC_Z


class HotReads:
    """One per process, on `app.state.hot_reads`."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        # Per process state the reads keep between requests, each under a key read in the
        # same statement as what it stands for (see `stats.hot`).
        self.memo: dict[str, Any] = {}


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=_OPTIONS)


async def answered(
    scope: Scope, read: Callable[[HotReads], Awaitable[bytes | None]]
) -> Response | None:
    """The body `read` writes, as the route's response; None (the route's to answer) when it
    declines or anything on the way fails, the database away included: the route then meets
    the same thing and answers in its own terms."""
    reads: HotReads | None = getattr(scope["app"].state, "hot_reads", None)
    if reads is None:
        return None
    try:
        body = await read(reads)
    except Exception:
        return None
    return None if body is None else Response(body, media_type="application/json")


async def open_hot_reads(app: FastAPI) -> None:
    size = max(2, app.state.settings.db_pool_size // 2)
    app.state.hot_reads = HotReads(await Connections.open(plain_url(app.state.database_url), size))


async def close_hot_reads(app: FastAPI) -> None:
    reads: HotReads | None = getattr(app.state, "hot_reads", None)
    if reads is not None:
        await reads.connections.close()
