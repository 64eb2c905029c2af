"""A run's scores as one CSV stream, straight out of PostgreSQL, for credit and policy.

The paged JSON endpoint builds a pydantic object per row (most of scoring's time at a
million enterprises) and its consumers spend most of theirs decoding it; a page timing out
restarted their whole catch-up. Here PostgreSQL writes the CSV itself (`COPY (SELECT ...) TO
STDOUT`) and the chunks are passed on as they come: no Python object per row, memory bounded
by a small queue of chunks, and the consumer reads the body with a timeout per chunk.

The columns are what the paged endpoint's items carry and the consumers read, with the same
values: the stage by name, NaN totals and percentiles as empty (null), and with `facts` the
period's facts, `founded_on` and `age_years` as `_facts` computes them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.catalogue import INDICATOR_CODES, PROFILE, STAGES

TAG_FACTS = tuple(p.code for p in PROFILE if p.kind == "tags")

# Constants of the catalogue, never caller input: safe to write into the statement.
_STAGE_NAMES = "ARRAY[" + ", ".join(f"'{s.value}'" for s in STAGES) + "]::text[]"


# What the stream hands on at a time. asyncpg delivers the COPY in pieces of ~8 KB (20,000
# of them for a million enterprises with facts), and every piece was an HTTP chunk that the
# server sent and each consumer parsed on its own (the body's parsing was a quarter of the
# policy service's CPU in its catch-up, py-spy); gathered, they are a few hundred.
CHUNK_BYTES = 1 << 20


# For this statement only (SET LOCAL). At a million enterprises, JIT compiled the fifty
# columns' expressions for 10 s of a 26 s statement (EXPLAIN ANALYZE), for rows each touched
# once; and with the default 4 MB the hash joins and the sort by USCC spilled ~450 MB to disk.
EXPORT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'")


def _fact_select(code: str) -> str:
    if code in TAG_FACTS:
        # A JSON array in one CSV cell: the reader needs no PostgreSQL array syntax.
        return f'array_to_json(f."{code}")::text AS "{code}"'
    return f'f."{code}"'


def export_query(with_facts: bool) -> str:
    """The statement for one run (`$1`), in USCC order; with facts, of its period (`$2`).

    The run's scores and their enterprises are joined and sorted first, on their own: with
    the facts joined before the sort, PostgreSQL sorted ~540-byte rows (450 MB spilled to
    disk at a million); the facts are then merged in by their key, in that same order (or
    sorted by the planner when their table's order makes the key's scan dear).
    """
    run = {
        "uscc": "e.uscc",
        "name": "e.name",
        "stage": f"({_STAGE_NAMES})[s.stage + 1]",
        "scored": "s.scored",
        "exclusion": "s.exclusion",
        "total": "NULLIF(s.total, 'NaN')",
        "rank": "s.rank",
        "cohort_size": "s.cohort_size",
        "percentile": "NULLIF(s.percentile, 'NaN')",
        "tier": "s.tier",
    }
    selected = ", ".join(f"{expr} AS {name}" for name, expr in run.items())
    scores = (
        "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
        "WHERE s.run_id = $1"
    )
    if not with_facts:
        return f"SELECT {selected} {scores} ORDER BY e.uscc"
    cols = [f"r.{name}" for name in run]
    cols += [_fact_select(c) for c in (*INDICATOR_CODES, *(p.code for p in PROFILE))]
    # As `_facts` does: days to the period's last day over 365.25, to 2 places.
    cols += [
        "r.founded_on",
        "round(((make_date($2::int, 12, 31) - r.founded_on) / 365.25)::numeric, 2)"
        "::float8 AS age_years",
    ]
    return (
        f"SELECT {', '.join(cols)} "
        f"FROM (SELECT {selected}, e.founded_on {scores} ORDER BY e.uscc) r "
        "LEFT JOIN scoring.facts f ON f.uscc = r.uscc AND f.period = $2 "
        "ORDER BY r.uscc"
    )


async def stream_scores(
    engine: AsyncEngine, run_id: uuid.UUID, period: int, with_facts: bool, queue_size: int = 8
) -> AsyncIterator[bytes]:
    """The CSV (with a header) of a run's scores, chunk by chunk as PostgreSQL writes it
    (gathered into chunks of `CHUNK_BYTES`, the last one shorter).

    COPY pushes into a bounded queue from its own task, so a slow reader slows the COPY
    instead of the chunks piling up here; a reader that goes away cancels it.
    """
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(queue_size)
    pending = bytearray()

    async def push(data: bytes) -> None:
        pending.extend(data)  # asyncpg hands over a buffer it may reuse
        if len(pending) >= CHUNK_BYTES:
            await queue.put(bytes(pending))
            pending.clear()

    async def produce() -> None:
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                args = (run_id, period) if with_facts else (run_id,)
                async with driver.transaction():
                    for setting in EXPORT_SETTINGS:
                        await driver.execute(setting)
                    await driver.copy_from_query(
                        export_query(with_facts),
                        *args,
                        output=push,
                        format="csv",
                        header=True,
                    )
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)
            return
        if pending:
            await queue.put(bytes(pending))
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                return
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
