"""A table that holds one run's rows at a time, partitioned by run (LIST on `run_id`).

Credit and policy each keep the current published evaluation's rows (a million at scale) and
replace them with the next run's in the transaction that takes the run in. Deleting the
previous million rows and copying the new ones into the same indexed table cost more than
the copy itself: the DELETE writes every old row again, and each new key then meets its
dead twin in the index (policy's facts: 5 s of server CPU into an empty table, ~11 s over
the previous run's rows at a million enterprises, per-statement backend CPU). Instead the new
run goes into a fresh table of its own (no index yet, written frozen by COPY FREEZE, as it
was created in this transaction), which is attached as the run's partition, its indexes
built once; the previous run's partition is then dropped.

Locks, and why readers are not held up: creating the table and attaching it take no lock a
reader conflicts with (ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, and the new table
is invisible until commit, so readers keep reading the previous run meanwhile). Dropping the
previous partition takes ACCESS EXCLUSIVE on the parent, so it is the last step before the
commit: it waits for the reads in flight (milliseconds) and holds new ones for as long as the
commit takes. A reader never waits for anything else the writer holds, so the two cannot
deadlock.
"""

from __future__ import annotations

import uuid
from typing import Any


def run_partition(table: str, run_id: uuid.UUID) -> str:
    """The name of `run_id`'s partition of `table` (in the table's schema)."""
    return f"{table}_{run_id.hex}"


async def fresh_run_partition(conn: Any, schema: str, table: str, run_id: uuid.UUID) -> str:
    """A new, empty table for `run_id`'s rows of `schema.table`, to be filled (COPY FREEZE
    may: it was created in this transaction) and then attached (`attach_run_partition`).

    Its `run_id` defaults to the run, so a COPY need not carry the id on every row; its
    partition bound is a CHECK from the start, so attaching it needs no validation scan. A
    partition of the run left from an earlier import (its evaluation removed since) goes.
    """
    name = run_partition(table, run_id)
    if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.{name}") is not None:
        await conn.execute(f"DROP TABLE {schema}.{name}")
    await conn.execute(
        f"CREATE TABLE {schema}.{name} (LIKE {schema}.{table} INCLUDING DEFAULTS, "
        f"CONSTRAINT {name}_run CHECK (run_id = '{run_id}'::uuid))"
    )
    await conn.execute(f"ALTER TABLE {schema}.{name} ALTER COLUMN run_id SET DEFAULT '{run_id}'")
    return name


async def attach_run_partition(
    conn: Any, schema: str, table: str, name: str, run_id: uuid.UUID
) -> None:
    """`fresh_run_partition`'s table, filled, attached as `run_id`'s partition: the parent's
    indexes are built on it now, once."""
    await conn.execute(f"ALTER TABLE {schema}.{name} ALTER COLUMN run_id DROP DEFAULT")
    await conn.execute(
        f"ALTER TABLE {schema}.{table} ATTACH PARTITION {schema}.{name} FOR VALUES IN ('{run_id}')"
    )


async def drop_other_runs(conn: Any, schema: str, table: str, keep: uuid.UUID) -> list[str]:
    """Drop every partition of `schema.table` but `keep`'s; their names. The last step of
    the transaction: it locks the parent against readers until the commit."""
    names: list[str] = [
        r[0]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = $1::regclass ORDER BY 1",
            f"{schema}.{table}",
        )
    ]
    dropped = [n for n in names if n != run_partition(table, keep)]
    if dropped:
        await conn.execute("DROP TABLE " + ", ".join(f"{schema}.{n}" for n in dropped))
    return dropped
