"""Writing validated rows: one staging COPY, then one upsert per table.

The upsert only touches the columns the file has (a file without `legal_rep` keeps the one
on record) and skips rows whose values did not change, so re-importing the same file is a
no-op that reports every row as unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import PROFILE
from shared.db import raw_connection

ENTERPRISE_COLUMNS = ("founded_on", "industry", "legal_rep")
_PG_TYPES: dict[str, str] = {
    "uscc": "varchar(18)",
    "name": "text",
    "founded_on": "date",
    "industry": "text",
    "legal_rep": "text",
    "period": "smallint",
}
for _attr in PROFILE:
    if _attr.kind == "tags":
        _PG_TYPES[_attr.code] = "text[]"
    elif _attr.kind == "bool":
        _PG_TYPES[_attr.code] = "boolean"


def pg_type(column: str) -> str:
    return _PG_TYPES.get(column, "double precision")


async def upsert_rows(
    session: AsyncSession,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]] | Iterable[Sequence[Sequence[Any]]],
    import_id: uuid.UUID | None,
    *,
    chunked: bool = False,
) -> tuple[int, int, int]:
    """Upsert enterprises and facts; returns (inserted, updated, unchanged) fact rows.

    With `chunked`, `records` is an iterable of chunks, staged one after the other, so a
    bulk load never holds every row as Python objects at once.
    """
    conn = await raw_connection(session)
    cols = list(columns)
    assert {"uscc", "name", "period"} <= set(cols)
    defs = ", ".join(f'"{c}" {pg_type(c)}' for c in cols)
    await conn.execute(f"CREATE TEMP TABLE import_stage ({defs}) ON COMMIT DROP")
    chunks: Iterable[Sequence[Sequence[Any]]] = records if chunked else [records]  # type: ignore[list-item]
    staged = 0
    for chunk in chunks:
        await conn.copy_records_to_table("import_stage", records=chunk, columns=cols)
        staged += len(chunk)

    ent_cols = ["uscc", "name", *[c for c in ENTERPRISE_COLUMNS if c in cols]]
    ent_list = ", ".join(f'"{c}"' for c in ent_cols)
    ent_set = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in ent_cols[1:])
    ent_cmp = ", ".join(f'e."{c}"' for c in ent_cols[1:])
    ent_new = ", ".join(f'EXCLUDED."{c}"' for c in ent_cols[1:])
    await conn.execute(
        f"INSERT INTO scoring.enterprises AS e ({ent_list}) "
        f"SELECT DISTINCT ON (uscc) {ent_list} FROM import_stage "
        f"ON CONFLICT (uscc) DO UPDATE SET {ent_set}, updated_at = now() "
        f"WHERE ({ent_cmp}) IS DISTINCT FROM ({ent_new})"
    )

    fact_cols = [c for c in cols if c not in ("name", *ENTERPRISE_COLUMNS)]
    value_cols = [c for c in fact_cols if c not in ("uscc", "period")]
    col_list = ", ".join(f'"{c}"' for c in fact_cols)
    if value_cols:
        set_list = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in value_cols)
        cmp_old = ", ".join(f'f."{c}"' for c in value_cols)
        cmp_new = ", ".join(f'EXCLUDED."{c}"' for c in value_cols)
        conflict = (
            f"DO UPDATE SET {set_list}, import_id = EXCLUDED.import_id, updated_at = now() "
            f"WHERE ({cmp_old}, NULL::int) IS DISTINCT FROM ({cmp_new}, NULL::int)"
        )
    else:
        conflict = "DO NOTHING"
    src_list = ", ".join(f's."{c}"' for c in fact_cols)
    rows = await conn.fetch(
        f"INSERT INTO scoring.facts AS f ({col_list}, import_id, enterprise_id) "
        f"SELECT {src_list}, $1::uuid, e.id FROM import_stage s "
        f"JOIN scoring.enterprises e ON e.uscc = s.uscc "
        f"ON CONFLICT (uscc, period) {conflict} RETURNING (xmax = 0) AS inserted",
        import_id,
    )
    await conn.execute("DROP TABLE IF EXISTS import_stage")
    inserted = sum(1 for r in rows if r["inserted"])
    updated = len(rows) - inserted
    return inserted, updated, staged - len(rows)
