"""Storing a run's population from scoring's CSV export, without a Python object per row.

The columns for bulk matching are built by pyarrow and numpy (`population_from_export`); the
facts kept one row per enterprise (what explanations and single reads use) are written by
PostgreSQL itself: the CSV goes into a table of this transaction with COPY, and one INSERT
cleans each fact the way `clean_facts` does (an unusable value is dropped, never an error)
and builds the JSON. The statement is made of catalogue constants and header names checked
against the known columns, never of values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc

from services.policy.criteria import FACTS
from services.policy.matching.population import EXPORT_SOURCE, EXPORT_TYPES, _tag_mask

_PG_TYPES = {pa.string(): "text", pa.bool_(): "boolean", pa.int64(): "bigint"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal_array(values: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _clean(code: str, column: str) -> str:
    """SQL for one fact cleaned as `clean_facts` cleans it (NULL: missing)."""
    spec = FACTS[code]
    c = _quote(column)
    if spec.type == "tags":
        # A run has few distinct tag cells: each cleaned once (`tag_cells`), passed as `$2`.
        return f"($2::jsonb -> '{code}' -> {c})"
    if spec.type == "enum":
        return f"CASE WHEN {c} = ANY({_literal_array(spec.values)}) THEN {c} END"
    if spec.type == "bool":
        if EXPORT_TYPES.get(column) == pa.bool_():
            return c
        return f"CASE WHEN {c} = 0 THEN false WHEN {c} = 1 THEN true END"
    return f"NULLIF({c}::float8, 'NaN')"


def table_statement(header: Sequence[str]) -> str:
    """The transaction's table for the export's columns; ValueError for an unknown one."""
    unknown = [h for h in header if h not in EXPORT_TYPES]
    if unknown or len(set(header)) != len(header):
        raise ValueError(f"unexpected export columns {unknown or header}")
    cols = ", ".join(f"{_quote(h)} {_PG_TYPES.get(EXPORT_TYPES[h], 'float8')}" for h in header)
    return f"CREATE TEMPORARY TABLE run_export ({cols}) ON COMMIT DROP"


def insert_statement(header: Sequence[str]) -> str:
    """`$1` the run: every enterprise's cleaned facts, in the population's position order."""
    present = [code for code in FACTS if EXPORT_SOURCE.get(code, code) in header]
    # One row turned into JSON (to_jsonb of a record) is ~25 % cheaper than building the
    # object pair by pair; the cost is mostly the float8 to JSON numbers either way.
    cols = ", ".join(
        f"{_clean(code, EXPORT_SOURCE.get(code, code))} AS {_quote(code)}" for code in present
    )
    facts = (
        f"(SELECT jsonb_strip_nulls(to_jsonb(r)) FROM (SELECT {cols}) r)"
        if present
        else "'{}'::jsonb"
    )
    stage = _clean("stage", "stage") if "stage" in header else "NULL"
    score = _clean("score", "total") if "total" in header else "NULL"
    tier = f"({_clean('tier', 'tier')})::smallint" if "tier" in header else "NULL"
    return (
        "INSERT INTO policy.enterprise_facts "
        "(uscc, run_id, position, name, stage, score, tier, facts) "
        'SELECT uscc, $1, row_number() OVER (ORDER BY uscc COLLATE "C") - 1, '
        f"COALESCE(name, ''), {stage}, {score}, {tier}, {facts} "
        "FROM run_export WHERE $2::jsonb IS NOT NULL"
    )


def tag_cells(table: pa.Table) -> str:
    """For each tags fact, each distinct cell of the export and its cleaned value (sorted,
    distinct; null when a tag is unknown), as JSON: `$2` of `insert_statement`."""
    out: dict[str, dict[str, list[str] | None]] = {}
    for code, spec in FACTS.items():
        if spec.type != "tags" or code not in table.column_names:
            continue
        cells = pc.unique(table.column(code).drop_null()).to_pylist()
        out[code] = {}
        for cell in cells:
            mask = _tag_mask(cell, spec.values)
            out[code][cell] = (
                None if mask < 0 else sorted(t for i, t in enumerate(spec.values) if mask >> i & 1)
            )
    return json.dumps(out)


async def write_facts(
    conn: asyncpg.Connection, run_id: uuid.UUID, path: str, header: Sequence[str], tags: str
) -> int:
    """The export's rows as `policy.enterprise_facts` of `run_id`; the number written."""
    await conn.execute(table_statement(header))
    await conn.copy_to_table(
        "run_export", source=path, columns=list(header), format="csv", header=True
    )
    status = await conn.execute(insert_statement(header), run_id, tags)
    await conn.execute("DROP TABLE run_export")
    return int(status.split()[-1])
