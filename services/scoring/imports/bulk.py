"""Bulk loading of facts already held as columns (an initial load of a whole province, the
benchmarks), through the same upsert semantics as the import API.

The import API validates every field of a file in Python, which is right for what people
upload but costs ~40 s per million rows. Here the numeric columns are already typed arrays,
so they go to PostgreSQL as one binary COPY laid over a numpy buffer (floats with NaN for
missing, yes/no as -1/0/1, tags as bit masks over their vocabulary), the few text columns as a
second COPY, and SQL turns them into the same rows the import writes, with a `system` source
(`BulkFacts.source_system`) as the provenance of every value. Hand-written because no library
writes PostgreSQL's binary COPY from numpy.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import INDICATOR_CODES, PROFILE
from services.scoring.evaluations.repository import SEND_PIECE, strip_envelope
from services.scoring.imports.repository import (
    attach_partition,
    bulk_settings,
    fresh_partition,
    lock_period,
    merge_enterprises,
)
from services.scoring.models import FACT_VALUE_COLUMNS, facts_partition
from services.scoring.provenance import service as provenance
from services.scoring.provenance.repository import fact_upsert_sql, protected_sources
from shared.db import raw_connection

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
CHUNK = 100_000
NUMERIC_PROFILE = tuple(p.code for p in PROFILE if p.kind not in ("bool", "tags"))
BOOL_PROFILE = tuple(p.code for p in PROFILE if p.kind == "bool")
TAG_PROFILE = tuple(p.code for p in PROFILE if p.kind == "tags")


@dataclass
class BulkFacts:
    period: int
    uscc: npt.NDArray[np.str_]
    name: npt.NDArray[np.str_]
    indicators: npt.NDArray[np.float64]  # [n, 24], NaN = missing
    numeric: Mapping[str, npt.NDArray[np.float64]]  # NaN = missing
    bools: Mapping[str, npt.NDArray[np.bool_]]
    tags: Mapping[str, npt.NDArray[np.integer]]  # bit masks over `vocabularies`
    vocabularies: Mapping[str, Sequence[str]]
    founded_on: npt.NDArray[np.datetime64] | None = None
    industry: npt.NDArray[np.str_] | None = None
    district: npt.NDArray[np.str_] | None = None
    legal_rep: npt.NDArray[np.str_] | None = None
    # The provenance of every value loaded: a named source system and who loaded it.
    source_system: str = "bulk_load"
    created_by: str = "bulk_load"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.uscc.shape[0])


def _num_dtype() -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nf", ">i2"), ("ul", ">i4"), ("uscc", "S18")]
    for k in range(len(INDICATOR_CODES) + len(NUMERIC_PROFILE)):
        fields += [(f"fl{k}", ">i4"), (f"f{k}", ">f8")]
    for k in range(len(BOOL_PROFILE)):
        fields += [(f"bl{k}", ">i4"), (f"b{k}", ">i2")]
    for k in range(len(TAG_PROFILE)):
        fields += [(f"tl{k}", ">i4"), (f"t{k}", ">i4")]
    return np.dtype(fields)


def _num_chunks(facts: BulkFacts, order: npt.NDArray[np.intp]) -> Iterator[bytes]:
    dtype = _num_dtype()
    n_fields = (
        1 + len(INDICATOR_CODES) + len(NUMERIC_PROFILE) + len(BOOL_PROFILE) + len(TAG_PROFILE)
    )
    yield _SIGNATURE
    for start in range(0, facts.n, CHUNK):
        rows = order[start : start + CHUNK]
        buf = np.zeros(rows.size, dtype=dtype)
        buf["nf"] = n_fields
        buf["ul"] = 18
        # A cast, not np.char.encode (six times slower); both refuse a non-ASCII character.
        buf["uscc"] = facts.uscc[rows].astype("S18")
        k = 0
        indicators = facts.indicators[rows]
        for j in range(len(INDICATOR_CODES)):
            buf[f"fl{k}"], buf[f"f{k}"] = 8, indicators[:, j]
            k += 1
        for code in NUMERIC_PROFILE:
            buf[f"fl{k}"], buf[f"f{k}"] = 8, facts.numeric[code][rows]
            k += 1
        for k, code in enumerate(BOOL_PROFILE):
            buf[f"bl{k}"], buf[f"b{k}"] = 2, facts.bools[code][rows].astype(np.int16)
        for k, code in enumerate(TAG_PROFILE):
            buf[f"tl{k}"], buf[f"t{k}"] = 4, facts.tags[code][rows].astype(np.int32)
        yield buf.tobytes()
    yield b"\xff\xff"


async def _ahead(chunks: Iterator[bytes | memoryview]) -> AsyncIterator[memoryview]:
    """`chunks`, each made in a worker thread while the previous one is sent and taken in by
    the server (numpy's copies release the GIL): the encoding and the server's COPY overlap
    on the two cores instead of taking turns. Sent in pieces, as the scores are
    (`evaluations.repository.SEND_PIECE`): asyncpg copies what it is given into a message,
    and pieces reuse the same memory where whole chunks took fresh pages each time."""
    done = object()

    def step() -> object:
        return next(chunks, done)

    pending = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while (chunk := await pending) is not done:
            pending = asyncio.ensure_future(asyncio.to_thread(step))
            assert isinstance(chunk, bytes | memoryview)
            view = memoryview(chunk)
            for at in range(0, len(view), SEND_PIECE):
                yield view[at : at + SEND_PIECE]
    finally:
        pending.cancel()


def _text_records(facts: BulkFacts, rows: npt.NDArray[np.intp]) -> list[tuple[object, ...]]:
    founded = (
        facts.founded_on[rows].astype("datetime64[D]").astype(object).tolist()
        if facts.founded_on is not None
        else [None] * rows.size
    )

    def text(column: npt.NDArray[np.str_] | None) -> list[object]:
        return column[rows].tolist() if column is not None else [None] * rows.size

    return list(
        zip(
            facts.uscc[rows].tolist(),
            facts.name[rows].tolist(),
            founded,
            text(facts.industry),
            text(facts.district),
            text(facts.legal_rep),
            strict=True,
        )
    )


TEXT_OID = 25
FRESH_CHUNK = 32_768  # rows per chunk of the fresh load: its byte mask stays in the caches


def _text_array(items: Sequence[str]) -> bytes:
    """A text[] in PostgreSQL's binary form (no NULLs)."""
    if not items:
        return struct.pack(">iii", 0, 0, TEXT_OID)
    encoded = [item.encode() for item in items]
    head = struct.pack(">iiiii", 1, 0, TEXT_OID, len(encoded), 1)
    return head + b"".join(struct.pack(">i", len(e)) + e for e in encoded)


@dataclass
class _TagTable:
    """Every mask's tag list in binary, padded to the longest, with its true length: a
    column of masks becomes a column of arrays by one lookup."""

    arrays: npt.NDArray[np.void]
    lengths: npt.NDArray[np.int32]

    @classmethod
    def of(cls, vocabulary: Sequence[str]) -> _TagTable:
        # The same lists, in the same order, as the tag_map joins of the other paths.
        encoded = [
            _text_array(sorted(v for i, v in enumerate(vocabulary) if mask >> i & 1))
            for mask in range(1 << len(vocabulary))
        ]
        width = max(len(e) for e in encoded)
        return cls(
            np.array([e.ljust(width, b"\0") for e in encoded], dtype=f"V{width}"),
            np.array([len(e) for e in encoded], dtype=np.int32),
        )

    def index(self, masks: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
        # A mask outside the vocabulary has no tag list: '{}' (mask 0), as the join gives.
        inside = (masks >= 0) & (masks < self.lengths.size)
        return np.where(inside, masks, 0).astype(np.intp)


def _fact_dtype(tag_tables: Sequence[_TagTable]) -> np.dtype[np.void]:
    n_floats = len(INDICATOR_CODES) + len(NUMERIC_PROFILE)
    fields: list[tuple[Any, ...]] = [
        ("nf", ">i2"),
        ("ul", ">i4"),
        ("uscc", "S18"),
        ("il", ">i4"),
        ("id", ">i8"),
        # One nested field: a column block is set by one assignment, not one per column.
        ("vals", [("l", ">i4"), ("v", ">f8")], (n_floats,)),
    ]
    for k in range(len(BOOL_PROFILE)):
        fields += [(f"bl{k}", ">i4"), (f"b{k}", "u1")]
    for k, table in enumerate(tag_tables):
        fields += [(f"tl{k}", ">i4"), (f"t{k}", table.arrays.dtype.str)]
    return np.dtype(fields)


def _fact_chunks(
    facts: BulkFacts,
    order: npt.NDArray[np.intp],
    usccs: npt.NDArray[np.bytes_],
    ids: npt.NDArray[np.int64],
) -> Iterator[bytes | memoryview]:
    """The facts rows themselves in binary COPY form (uscc, enterprise_id, then the value
    columns): each row laid out at its widest, every field present and each tag array at
    its longest, then the bytes of a NULL value (NaN) and the padding of the tag arrays
    dropped by one boolean mask over the chunk, so the rows come out at their true widths."""
    tables = [_TagTable.of(facts.vocabularies[c]) for c in TAG_PROFILE]
    dtype = _fact_dtype(tables)
    n_floats = len(INDICATOR_CODES) + len(NUMERIC_PROFILE)
    n_fields = 2 + n_floats + len(BOOL_PROFILE) + len(TAG_PROFILE)
    vals_at: int = dtype.fields["vals"][1]  # type: ignore[index]
    tag_at = [dtype.fields[f"t{k}"][1] for k in range(len(tables))]  # type: ignore[index]
    yield _SIGNATURE
    for start in range(0, facts.n, FRESH_CHUNK):
        rows = order[start : start + FRESH_CHUNK]
        buf = np.zeros(rows.size, dtype=dtype)
        buf["nf"] = n_fields
        buf["ul"], buf["uscc"] = 18, usccs[start : start + FRESH_CHUNK]
        buf["il"], buf["id"] = 8, ids[start : start + FRESH_CHUNK]
        vals = buf["vals"]
        vals["v"][:, : len(INDICATOR_CODES)] = facts.indicators[rows]
        for j, code in enumerate(NUMERIC_PROFILE, len(INDICATOR_CODES)):
            vals["v"][:, j] = facts.numeric[code][rows]
        missing = np.isnan(vals["v"])
        vals["l"] = np.where(missing, -1, 8)
        keep = np.ones((rows.size, dtype.itemsize), dtype=bool)
        # The value block as (row, value, 12 bytes): a NULL keeps its length, not its data.
        block = keep[:, vals_at : vals_at + 12 * n_floats].reshape(rows.size, n_floats, 12)
        block[:, :, 4:] = ~missing[:, :, None]
        for k, code in enumerate(BOOL_PROFILE):
            buf[f"bl{k}"], buf[f"b{k}"] = 1, facts.bools[code][rows]
        for k, (code, table) in enumerate(zip(TAG_PROFILE, tables, strict=True)):
            which = table.index(facts.tags[code][rows])
            lengths = table.lengths[which]
            buf[f"tl{k}"], buf[f"t{k}"] = lengths, table.arrays[which]
            width = table.arrays.dtype.itemsize
            keep[:, tag_at[k] : tag_at[k] + width] = np.arange(width) < lengths[:, None]
        # The mask's selection is a new array already: not copied once more into bytes.
        yield buf.view(np.uint8).reshape(rows.size, dtype.itemsize)[keep].data
    yield b"\xff\xff"


_ID_ROW = np.dtype([("nf", ">i2"), ("ul", ">i4"), ("uscc", "S18"), ("il", ">i4"), ("id", ">i8")])


async def _enterprise_ids(conn: Any) -> bytearray:
    """The (uscc, id) of the staged enterprises (`bulk_text`), as a binary COPY stream."""
    received = bytearray()

    async def sink(data: bytes) -> None:
        received.extend(data)

    await conn.copy_from_query(
        "SELECT s.uscc, e.id FROM bulk_text s JOIN scoring.enterprises e ON e.uscc = s.uscc",
        output=sink,
        format="binary",
    )
    return received


def _ids_of(
    streams: Sequence[bytearray], usccs: npt.NDArray[np.bytes_]
) -> npt.NDArray[np.int64] | None:
    """The ids of `usccs` (sorted) from binary COPY streams of (uscc, id) rows, or None when
    the streams hold fewer rows than `usccs`."""
    bodies = [strip_envelope(s) for s in streams]
    if not bodies:
        return None
    if any(len(b) % _ID_ROW.itemsize for b in bodies):
        raise ValueError("unexpected row width in binary COPY")
    rows = np.concatenate([np.frombuffer(b, dtype=_ID_ROW) for b in bodies])
    if rows.size < usccs.size:
        return None
    pos = np.searchsorted(usccs, rows["uscc"])
    found = np.zeros(usccs.size, dtype=bool)
    if rows.size:
        pos = np.minimum(pos, usccs.size - 1)
        if (usccs[pos] != rows["uscc"]).any():
            raise ValueError("an enterprise id for an USCC not staged")
        found[pos] = True
    if rows.size != usccs.size or not found.all():
        raise ValueError("staged USCCs and their enterprises do not match one to one")
    ids = np.empty(usccs.size, dtype=np.int64)
    ids[pos] = rows["id"]
    return ids


async def _load_fresh(
    conn: Any,
    table: str,
    facts: BulkFacts,
    order: npt.NDArray[np.intp],
    source_id: int,
    written_ids: Sequence[bytearray],
) -> int:
    """A period's first facts by binary COPY straight into its fresh partition (FREEZE: the
    table was made in this transaction), instead of staging every value and inserting the
    staged rows joined to their enterprises. At a million rows, the COPY of the rows as they
    are stored took 6.7 s of server CPU against 4-5 s for staging plus 8-10 s for the
    insert (BENCHMARKS.md). The period and the sources array are the same in every row:
    column defaults while the COPY runs, so no row carries them."""
    # In load order; a cast, not np.char.encode (six times slower): both refuse non-ASCII.
    usccs = facts.uscc[order].astype("S18")
    # The merge's own (uscc, id) rows when it wrote every enterprise (a load of new ones),
    # else a join of the staged rows to the table.
    ids = _ids_of(written_ids, usccs)
    if ids is None:
        ids = _ids_of([await _enterprise_ids(conn)], usccs)
        assert ids is not None
    sources = ",".join([str(int(source_id))] * len(FACT_VALUE_COLUMNS))
    await conn.execute(
        f"ALTER TABLE scoring.{table} ALTER period SET DEFAULT {int(facts.period)}, "
        f"ALTER sources SET DEFAULT '{{{sources}}}'::int[]"
    )
    status = await conn.copy_to_table(
        table,
        schema_name="scoring",
        source=_ahead(_fact_chunks(facts, order, usccs, ids)),
        columns=[
            "uscc",
            "enterprise_id",
            *INDICATOR_CODES,
            *NUMERIC_PROFILE,
            *BOOL_PROFILE,
            *TAG_PROFILE,
        ],
        format="binary",
        freeze=True,
    )
    await conn.execute(
        f"ALTER TABLE scoring.{table} ALTER period DROP DEFAULT, ALTER sources DROP DEFAULT"
    )
    return int(status.split()[-1])


async def bulk_load(session: AsyncSession, facts: BulkFacts) -> tuple[int, int, int]:
    """Upsert enterprises and one period's facts; returns (inserted, updated, unchanged)."""
    conn = await raw_connection(session)
    await lock_period(conn, facts.period)
    source = await provenance.add_source(
        session,
        kind="system",
        system=facts.source_system,
        precedence=provenance.IMPORT_PRECEDENCE,
        created_by=facts.created_by,
        period=facts.period,
    )
    await bulk_settings(conn)
    float_cols = [*INDICATOR_CODES, *NUMERIC_PROFILE]
    await conn.execute(
        "CREATE TEMP TABLE bulk_text (uscc varchar(18), name text, founded_on date, "
        "industry text, district text, legal_rep text) ON COMMIT DROP"
    )
    # Staged in USCC order, which the inserts below keep (the staged rows are the scans'
    # outer side): every key then lands at or next to the previous one in the primary keys'
    # B-trees, instead of a descent to a random page per row. At a million rows this took
    # the enterprises' insert from 14.4 to 4.1 s and the facts' from 20.0 to 12.3 s of
    # server CPU (BENCHMARKS.md); ids are then given in USCC order, as the import API does.
    order = np.argsort(facts.uscc, kind="stable")
    first_load = not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scoring.facts WHERE period = $1)", facts.period
    )
    # A period without a partition yet: its rows go straight into a fresh one.
    fresh = await fresh_partition(conn, facts.period) if first_load else None
    if fresh is None:
        defs = ", ".join(
            ["uscc varchar(18)"]
            + [f'"{c}" double precision' for c in float_cols]
            + [f'"{c}" smallint' for c in BOOL_PROFILE]
            + [f'"{c}" integer' for c in TAG_PROFILE]
        )
        await conn.execute(f"CREATE TEMP TABLE bulk_num ({defs}) ON COMMIT DROP")
        await conn.copy_to_table(
            "bulk_num", source=_ahead(_num_chunks(facts, order)), format="binary"
        )
    for start in range(0, facts.n, CHUNK):
        await conn.copy_records_to_table(
            "bulk_text", records=_text_records(facts, order[start : start + CHUNK])
        )
    kept = ("founded_on", "industry", "district", "legal_rep")  # a missing one keeps ours
    written_ids: list[bytearray] = []
    whole = await merge_enterprises(
        conn,
        f"SELECT uscc, name, {', '.join(kept)} FROM bulk_text",
        ("name", *kept),
        kept,
        ids_to=written_ids if fresh is not None else None,
    )
    if fresh is not None:
        ids = written_ids if whole else []
        written = await _load_fresh(conn, fresh, facts, order, source.id, ids)
        await attach_partition(conn, fresh, facts.period)
        await conn.execute("DROP TABLE IF EXISTS bulk_text")
        return written, 0, facts.n - written
    exprs = [f"NULLIF(s.\"{c}\", 'NaN')" for c in float_cols]
    exprs += [f'CASE WHEN s."{c}" < 0 THEN NULL ELSE s."{c}" = 1 END' for c in BOOL_PROFILE]
    joins = []
    for k, c in enumerate(TAG_PROFILE):
        # Every mask's tag list, made once: a join is far cheaper than a subquery per row.
        vocab = list(facts.vocabularies[c])
        await conn.execute(f"CREATE TEMP TABLE tag_map_{k} (mask int, tags text[]) ON COMMIT DROP")
        await conn.copy_records_to_table(
            f"tag_map_{k}",
            records=[
                (mask, sorted(v for i, v in enumerate(vocab) if mask >> i & 1))
                for mask in range(1 << len(vocab))
            ],
        )
        joins.append(f'LEFT JOIN tag_map_{k} m{k} ON m{k}.mask = s."{c}"')
        exprs.append(f"coalesce(m{k}.tags, '{{}}')")
    value_cols = [*float_cols, *BOOL_PROFILE, *TAG_PROFILE]
    assert sorted(value_cols) == sorted(FACT_VALUE_COLUMNS)
    col_list = ", ".join(f'"{c}"' for c in value_cols)
    named = ", ".join(f'{e} AS "{c}"' for e, c in zip(exprs, value_cols, strict=True))
    select = (
        f"SELECT s.uscc, $1::smallint AS period, e.id AS enterprise_id, {named} FROM bulk_num s "
        f"JOIN scoring.enterprises e ON e.uscc = s.uscc {' '.join(joins)}"
    )
    if first_load:
        # Nothing to merge with (the period's partition exists, empty): a plain insert
        # skips the speculative-insertion machinery. The period's advisory lock keeps a
        # concurrent load from slipping in between. Every column is loaded, so every value
        # has this source: one array for all rows.
        status = await conn.execute(
            f"INSERT INTO scoring.facts (uscc, period, enterprise_id, {col_list}, sources) "
            f"SELECT q.*, array_fill($2::int, ARRAY[{len(FACT_VALUE_COLUMNS)}]) "
            f"FROM ({select}) q",
            facts.period,
            source.id,
        )
        written = int(status.split()[-1])
        await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
        return written, 0, facts.n - written
    protected = await protected_sources(session, facts.period, provenance.IMPORT_PRECEDENCE)
    counts = await conn.fetchrow(
        fact_upsert_sql(
            select,
            value_cols,
            source="$2::int",
            protected="$3::int[]",
            import_id="NULL::uuid",
            table=f"scoring.{facts_partition(facts.period)}",
        ),
        facts.period,
        source.id,
        protected,
    )
    assert counts is not None
    await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
    inserted, written = int(counts["inserted"]), int(counts["written"])
    return inserted, written - inserted, facts.n - written
