"""A run's scores as one CSV or Arrow stream, straight out of PostgreSQL, for credit and policy.

The paged JSON endpoint builds a pydantic object per row (most of scoring's time at a
million enterprises) and its consumers spend most of theirs decoding it; a page timing out
restarted their whole catch-up. Here PostgreSQL writes the CSV itself (`COPY (SELECT ...) TO
STDOUT`) and the chunks are passed on as they come: no Python object per row, memory bounded
by a small queue of chunks, and the consumer reads the body with a timeout per chunk.

The columns are what the paged endpoint's items carry and the consumers read, with the same
values: the stage by name, NaN totals and percentiles as empty (null), and with `facts` the
period's facts, `founded_on` and `age_years` as `_facts` computes them.

The same rows can come as an Arrow IPC stream (`stream_arrow`, asked for with `Accept:
application/vnd.apache.arrow.stream`): at a million enterprises with facts, PostgreSQL
formatting ~40 M floats as text and the reader parsing them again took most of the export's
time. There ADBC's PostgreSQL driver reads the statement's binary COPY into Arrow record
batches (typed columns, nulls as nulls), which are written on as IPC messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import adbc_driver_postgresql
import adbc_driver_postgresql.dbapi as adbc_pg
import pyarrow as pa
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.catalogue import INDICATOR_CODES, PROFILE, STAGES

TAG_FACTS = tuple(p.code for p in PROFILE if p.kind == "tags")

# Constants of the catalogue, never caller input: safe to write into the statement.
_STAGE_NAMES = "ARRAY[" + ", ".join(f"'{s.value}'" for s in STAGES) + "]::text[]"


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
    """The statement for one run (`$1`), in USCC order; with facts, of its period (`$2`)."""
    cols = [
        "e.uscc",
        "e.name",
        f"({_STAGE_NAMES})[s.stage + 1] AS stage",
        "s.scored",
        "s.exclusion",
        "NULLIF(s.total, 'NaN') AS total",
        "s.rank",
        "s.cohort_size",
        "NULLIF(s.percentile, 'NaN') AS percentile",
        "s.tier",
    ]
    join = ""
    if with_facts:
        cols += [_fact_select(c) for c in (*INDICATOR_CODES, *(p.code for p in PROFILE))]
        # As `_facts` does: days to the period's last day over 365.25, to 2 places.
        cols += [
            "e.founded_on",
            "round(((make_date($2::int, 12, 31) - e.founded_on) / 365.25)::numeric, 2)"
            "::float8 AS age_years",
        ]
        join = "LEFT JOIN scoring.facts f ON f.uscc = e.uscc AND f.period = $2 "
    return (
        f"SELECT {', '.join(cols)} "
        "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
        f"{join}WHERE s.run_id = $1 ORDER BY e.uscc"
    )


async def stream_scores(
    engine: AsyncEngine, run_id: uuid.UUID, period: int, with_facts: bool, queue_size: int = 8
) -> AsyncIterator[bytes]:
    """The CSV (with a header) of a run's scores, chunk by chunk as PostgreSQL writes it.

    COPY pushes into a bounded queue from its own task, so a slow reader slows the COPY
    instead of the chunks piling up here; a reader that goes away cancels it.
    """
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(queue_size)

    async def push(data: bytes) -> None:
        await queue.put(bytes(data))  # asyncpg hands over a buffer it may reuse

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


ARROW_STREAM = "application/vnd.apache.arrow.stream"
# Record batches of about this many bytes (ADBC's hint): a few per million rows, each an IPC
# message the reader can take in while the next is read from PostgreSQL.
_BATCH_BYTES = 16 << 20
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # continuation marker, length 0


def _literal_query(with_facts: bool, run_id: uuid.UUID, period: int) -> str:
    """`export_query` with its two parameters written in: ADBC's driver reads a statement
    through binary COPY only without bound parameters. A `UUID` and an `int`, never text."""
    query = export_query(with_facts)
    query = query.replace("$1", f"'{uuid.UUID(str(run_id))}'::uuid")
    return query.replace("$2", str(int(period)))


class _ArrowReader:
    """One export through ADBC (libpq, blocking): each `step` runs in a worker thread and
    returns the next encapsulated IPC message (the schema first, the end-of-stream marker
    last), b"" once done: the messages of a stream, as `pa.ipc.new_stream` would write them."""

    def __init__(self, url: str, query: str) -> None:
        self._url, self._query = url, query
        self._conn: Any = None
        self._cursor: Any = None
        self._reader: pa.RecordBatchReader | None = None
        self._done = False

    def step(self) -> bytes:
        if self._done:
            return b""
        if self._reader is None:
            self._conn = adbc_pg.connect(self._url, autocommit=True)
            cur = self._cursor = self._conn.cursor()
            for setting in EXPORT_SETTINGS:
                cur.execute(setting.replace("SET LOCAL", "SET"))  # this connection's only
            cur.adbc_statement.set_options(
                **{
                    adbc_driver_postgresql.StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(
                        _BATCH_BYTES
                    )
                }
            )
            cur.execute(self._query)
            self._reader = cur.fetch_record_batch()
            schema: bytes = self._reader.schema.serialize().to_pybytes()
            return schema
        try:
            batch = self._reader.read_next_batch()
        except StopIteration:
            self._done = True
            self.close()
            return _END_OF_STREAM
        out: bytes = batch.serialize().to_pybytes()
        return out

    def close(self) -> None:
        reader, cursor, conn = self._reader, self._cursor, self._conn
        self._reader = self._cursor = self._conn = None
        for resource in (reader, cursor, conn):
            if resource is not None:
                resource.close()


async def stream_arrow(
    url: str, run_id: uuid.UUID, period: int, with_facts: bool
) -> AsyncIterator[bytes]:
    """The rows of `stream_scores` as an Arrow IPC stream, read from PostgreSQL one record
    batch ahead of the reader (a slow reader holds at most one batch here); a reader that
    goes away closes the connection, which ends the COPY."""
    reader = _ArrowReader(url, _literal_query(with_facts, run_id, period))
    pending: asyncio.Task[bytes] | None = None
    try:
        pending = asyncio.ensure_future(asyncio.to_thread(reader.step))
        while True:
            chunk = await pending
            if not chunk:
                return
            pending = asyncio.ensure_future(asyncio.to_thread(reader.step))
            yield chunk
    finally:
        if pending is not None and not pending.done():
            await asyncio.gather(pending, return_exceptions=True)
        await asyncio.to_thread(reader.close)
