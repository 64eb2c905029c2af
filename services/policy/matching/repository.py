"""Reading and writing what matching stores: the population's columns, each rule's vectors,
the pushes they cause, and the slices of them that one enterprise or one pool page reads."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import raw_connection
from services.policy.matching.population import USCC_COLUMN, Encoded, facts_at
from shared.db import driver_connection


async def write_columns(session: AsyncSession, run_id: uuid.UUID, columns: list[Encoded]) -> None:
    """Replace the stored columns with those of `run_id` (only the current run is kept, but
    for the codes of a run whose matches are still stored: `recompute` aligns its pushed
    statuses with the new population by them, then lets them go)."""
    conn = await raw_connection(session)
    await conn.execute("DELETE FROM policy.population_columns WHERE run_id = $1", run_id)
    await prune_columns(session, run_id)
    # One statement per column, not `executemany`: with fifty 8 MB values at a million
    # enterprises, asyncpg's batching cost 1.4 s of client CPU against 0.25 s (measured).
    for column in columns:
        await conn.execute(
            "INSERT INTO policy.population_columns (run_id, name, dtype, vocabulary, data) "
            "VALUES ($1, $2, $3, $4, $5)",
            run_id,
            *column,
        )


async def prune_columns(session: AsyncSession, current: uuid.UUID) -> None:
    """Drop the columns of other runs, but the codes of runs that stored matches refer to."""
    conn = await raw_connection(session)
    await conn.execute(
        "DELETE FROM policy.population_columns WHERE run_id <> $1 AND NOT (name = $2 AND "
        "run_id IN (SELECT run_id FROM policy.rule_matches))",
        current,
        USCC_COLUMN,
    )


async def read_usccs(session: AsyncSession, run_id: uuid.UUID) -> bytes | None:
    conn = await raw_connection(session)
    data = await conn.fetchval(
        "SELECT data FROM policy.population_columns WHERE run_id = $1 AND name = $2",
        run_id,
        USCC_COLUMN,
    )
    return None if data is None else bytes(data)


async def read_columns(session: AsyncSession, run_id: uuid.UUID) -> list[Encoded]:
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT name, dtype, vocabulary, data FROM policy.population_columns WHERE run_id = $1",
        run_id,
    )
    return [(r[0], r[1], list(r[2]) if r[2] is not None else None, bytes(r[3])) for r in rows]


async def read_fact_rows(session: AsyncSession) -> list[list[Any]]:
    """Every stored enterprise as `[uscc, stage, facts]`, in position order."""
    conn = await raw_connection(session)
    # One JSON document for the whole population: a single json.loads in C beats decoding
    # thousands of jsonb values one by one.
    doc = await conn.fetchval(
        "SELECT coalesce(json_agg(json_build_array(uscc, stage, facts) ORDER BY position), "
        "'[]')::text FROM policy.enterprise_facts"
    )
    rows: list[list[Any]] = json.loads(doc)
    return rows


# --------------------------------------------------------------------------------------------
# Rule vectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleRow:
    """A rule's row of `rule_matches`, as written."""

    rule_key: str
    run_id: uuid.UUID
    policy_id: uuid.UUID | None
    version: int | None
    rule: dict[str, Any]
    fingerprint: str
    near_max: int
    leaves: Sequence[str]
    enterprises: int
    statuses: bytes
    failing: bytes
    counts: dict[str, Any]
    pushed: bool


_UPSERT = """
INSERT INTO policy.rule_matches (rule_key, run_id, policy_id, version, rule, fingerprint,
    near_max, leaves, enterprises, statuses, failing, counts, pushed, computed_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, now())
ON CONFLICT (rule_key) DO UPDATE SET run_id = excluded.run_id, policy_id = excluded.policy_id,
    version = excluded.version, rule = excluded.rule, fingerprint = excluded.fingerprint,
    near_max = excluded.near_max, leaves = excluded.leaves, enterprises = excluded.enterprises,
    statuses = excluded.statuses, failing = excluded.failing, counts = excluded.counts,
    pushed = excluded.pushed, computed_at = excluded.computed_at
"""


async def write_rules(session: AsyncSession, rows: Iterable[RuleRow]) -> None:
    conn = await raw_connection(session)
    for r in rows:
        await conn.execute(
            _UPSERT,
            r.rule_key,
            r.run_id,
            r.policy_id,
            r.version,
            json.dumps(r.rule, ensure_ascii=False),
            r.fingerprint,
            r.near_max,
            list(r.leaves),
            r.enterprises,
            r.statuses,
            r.failing,
            json.dumps(r.counts, ensure_ascii=False),
            r.pushed,
        )


async def delete_rules(
    session: AsyncSession, keys: Sequence[str] | None, keep: Sequence[str]
) -> None:
    """Drop the rows of `keys` (every row when None) except those of `keep`."""
    conn = await raw_connection(session)
    await conn.execute(
        "DELETE FROM policy.rule_matches WHERE ($1::text[] IS NULL OR rule_key = ANY($1)) "
        "AND NOT rule_key = ANY($2::text[])",
        None if keys is None else list(keys),
        list(keep),
    )


@dataclass(frozen=True, slots=True)
class Pushed:
    """A rule's statuses as stored with their pushes, and the population they were for."""

    run_id: uuid.UUID
    enterprises: int
    statuses: bytes


async def pushed_statuses(session: AsyncSession, keys: Sequence[str]) -> dict[str, Pushed]:
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT rule_key, run_id, enterprises, statuses FROM policy.rule_matches "
        "WHERE rule_key = ANY($1::text[]) AND pushed",
        list(keys),
    )
    return {r[0]: Pushed(r[1], r[2], bytes(r[3])) for r in rows}


async def any_pushed(session: AsyncSession, keys: Sequence[str]) -> bool:
    """Whether any batch has pushes of these rules: when none has (a first evaluation, rules
    never pushed), there is nothing for `pushed_before` to find (a million codes sent to it
    for nothing took 3.7 s)."""
    conn = await raw_connection(session)
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM policy.push_batches WHERE rule_keys && $1::text[])",
        list(keys),
    )
    return found


async def pushed_before(
    session: AsyncSession, usccs: list[str], keys: Sequence[str]
) -> list[tuple[str, str, bool]]:
    """(uscc, rule key, pushed eligible?) of every enterprise and rule pushed so far."""
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT uscc, rule_key, bool_or(status = 0) FROM policy.pushes "
        "WHERE uscc = ANY($1::text[]) AND rule_key = ANY($2::text[]) GROUP BY 1, 2",
        usccs,
        list(keys),
    )
    return [(r[0], r[1], r[2]) for r in rows]


PUSH_SET_COLUMNS = ("uscc", "first_id", "batch_id", "rules", "statuses")


async def reserve_push_ids(session: AsyncSession, n: int) -> int:
    """The first of `n` consecutive push ids, taken from `policy.push_ids` at once.

    Under `recompute`'s lock (the only writer of pushes), so no other transaction takes ids
    between the two calls; a rolled-back recompute leaves a gap, as an identity did.
    """
    conn = await raw_connection(session)
    first: int = await conn.fetchval("SELECT nextval('policy.push_ids')")
    if n > 1:
        await conn.execute("SELECT setval('policy.push_ids', $1)", first + n - 1)
    return first


async def add_push_batch(
    session: AsyncSession, run_id: uuid.UUID | None, keys: Sequence[str], titles: Sequence[str]
) -> int:
    conn = await raw_connection(session)
    batch: int = await conn.fetchval(
        "INSERT INTO policy.push_batches (run_id, rule_keys, titles) VALUES ($1, $2, $3) "
        "RETURNING id",
        run_id,
        list(keys),
        list(titles),
    )
    return batch


async def copy_push_sets(session: AsyncSession, rows: AsyncIterator[bytes]) -> int:
    """Insert push sets from a binary COPY stream of `PUSH_SET_COLUMNS`."""
    conn = await raw_connection(session)
    result: str = await conn.copy_to_table(
        "push_sets", schema_name="policy", source=rows, columns=PUSH_SET_COLUMNS, format="binary"
    )
    return int(result.rsplit(" ", 1)[-1])


# --------------------------------------------------------------------------------------------
# What readers take of them
# --------------------------------------------------------------------------------------------


# Every rule of the pools and published policies in force today (`service.active_rules`).
# Raw SQL: the ORM loaded every column of both tables (their other JSONB documents too) and
# decoded each rule per request. `{columns}` is what each reader takes of them.
_IN_FORCE = """
    SELECT 0 AS part, p.position AS position, p.code AS sort_code, 'pool' AS kind, {pool}
    FROM policy.pools p
    UNION ALL
    SELECT 1, 0, pol.code, 'policy', {policy}
    FROM policy.policies pol
    JOIN policy.policy_versions v ON v.policy_id = pol.id
    WHERE v.status = 'published' AND v.valid_from <= current_date
      AND (v.valid_to IS NULL OR v.valid_to >= current_date)
"""
# The digest of the set in force: which rows, in the rules' order, each as it is now. A row's
# physical place and the transaction that wrote it (`ctid`, `xmin`) change with every update
# of it, whatever the column, so the rules' content need not be read, let alone hashed: that
# was 0.6 ms of the server's CPU on every dashboard (md5 over the rules' JSON text). Freezing
# keeps `xmin` as it was (PostgreSQL 9.4 and later mark a row frozen without rewriting it).
_VERSIONS = _IN_FORCE.format(
    pool="concat_ws(':', p.ctid, p.xmin) AS row_version",
    policy="concat_ws(':', pol.ctid, pol.xmin, v.ctid, v.xmin)",
)
_DIGEST_OF = (
    "SELECT md5(coalesce(string_agg(kind || '/' || row_version, ';' "
    "ORDER BY part, position, sort_code), '')) FROM ({rows}) r"
)
RULES_DIGEST = _DIGEST_OF.format(rows=_VERSIONS)
# The rules with the digest of the set they were read in (the same snapshot).
ACTIVE_RULES = f"""
    WITH r AS ({
    _IN_FORCE.format(
        pool="p.code, p.name_zh AS title, p.rule::text AS rule, NULL::uuid AS policy_id, "
        "NULL::integer AS version, concat_ws(':', p.ctid, p.xmin) AS row_version",
        policy="pol.code, v.title_zh, v.rule::text, pol.id, v.version, "
        "concat_ws(':', pol.ctid, pol.xmin, v.ctid, v.xmin)",
    )
})
    SELECT ({_DIGEST_OF.format(rows="SELECT * FROM r")}) AS digest,
           kind, code, title, rule, policy_id, version
    FROM r ORDER BY part, position, sort_code
"""


# An enterprise's entry in every stored fact column of its run (`f`: its `enterprise_facts`
# row), in one LATERAL subquery: the bytes at its position, the columns' names, types and
# vocabularies. The columns are stored uncompressed, so each substring fetches one chunk.
_COLUMN_ENTRIES = f"""
    SELECT array_agg(c.name ORDER BY c.name) AS fact_names,
           array_agg(c.dtype ORDER BY c.name) AS fact_dtypes,
           json_agg(c.vocabulary ORDER BY c.name)::text AS fact_vocabularies,
           array_agg(substring(c.data FROM f.position * 8 + 1 FOR 8) ORDER BY c.name)
               AS fact_slices
    FROM policy.population_columns c WHERE c.run_id = f.run_id AND c.name <> '{USCC_COLUMN}'
"""


def _facts_of(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The facts of rows selected with `_COLUMN_ENTRIES` (all of one run), built from the
    columns; from the `facts` document of a population stored before its columns were."""
    first = rows[0] if rows else None
    if first is None or not first.fact_names:
        return [dict(r.facts or {}) for r in rows]
    width = len(first.fact_names)
    if any(r.fact_names != first.fact_names or len(r.fact_slices) != width for r in rows):
        return [dict(r.facts or {}) for r in rows]
    slices = [[bytes(r.fact_slices[c]) for r in rows] for c in range(width)]
    vocabularies = json.loads(first.fact_vocabularies)
    built = facts_at(first.fact_names, first.fact_dtypes, vocabularies, slices)
    return built if built is not None else [dict(r.facts or {}) for r in rows]


@dataclass(frozen=True, slots=True)
class StoredStatus:
    """One enterprise's entry in a rule's vectors, with what it was matched on."""

    fingerprint: str
    near_max: int
    status: int


@dataclass(frozen=True)
class EnterpriseEntry:
    name: str
    stage: str | None
    score: float | None
    run_id: uuid.UUID
    statuses: dict[str, StoredStatus]
    period: int | None = None  # of the evaluation `run_id` belongs to, read in the same statement
    # The digest of the rules in force (`RULES_DIGEST`), read in the same statement.
    rules_digest: str = ""
    # Everything the entry was built from, as read: equal contents make equal entries.
    content: tuple[Any, ...] = ()
    # The row the facts are built from, when they are first asked for: a hot read answered
    # from what it remembers never needs them (they were a tenth of policy's dashboard CPU).
    source: Any = None

    @cached_property
    def facts(self) -> dict[str, Any]:
        return _facts_of([self.source])[0]


_ENTRY = f"""
    SELECT f.name, f.stage, f.score, f.facts::text AS facts, f.run_id, m.keys, m.fingerprints,
           m.near_max, m.statuses, c.*,
           (SELECT e.period FROM policy.evaluations e WHERE e.run_id = f.run_id) AS period,
           ({RULES_DIGEST}) AS rules_digest
    FROM policy.enterprise_facts f
    CROSS JOIN LATERAL ({_COLUMN_ENTRIES}) c
    CROSS JOIN LATERAL (
        SELECT array_agg(r.rule_key) AS keys,
               array_agg(r.fingerprint) AS fingerprints,
               array_agg(r.near_max) AS near_max,
               array_agg(get_byte(substring(r.statuses FROM f.position + 1 FOR 1), 0))
                   AS statuses
        FROM policy.rule_matches r WHERE r.run_id = f.run_id
    ) m
    WHERE f.uscc = $1
"""


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


async def enterprise_entry(session: AsyncSession, uscc: str) -> EnterpriseEntry | None:
    """`entry_on` the session's connection."""
    return await entry_on(await driver_connection(session), uscc)


async def entry_on(conn: Any, uscc: str) -> EnterpriseEntry | None:
    """The enterprise's facts, its status under every stored rule and the digest of the rules
    in force, in one statement, so facts and statuses come from the same population even
    while a new one is committed.

    The status is a one-byte substring at the enterprise's position: the vectors are stored
    uncompressed, so PostgreSQL reads only the chunk that holds it. Sent on an asyncpg
    connection (`conn`) without SQLAlchemy: this is every mini-app dashboard's statement.
    """
    record = await conn.fetchrow(_ENTRY, uscc)
    if record is None:
        return None
    row = SimpleNamespace(**dict(record.items()))
    row.facts = None if row.facts is None else json.loads(row.facts)
    statuses = {
        k: StoredStatus(fp, nm, st)
        for k, fp, nm, st in zip(
            row.keys or (),
            row.fingerprints or (),
            row.near_max or (),
            row.statuses or (),
            strict=True,
        )
    }
    return EnterpriseEntry(
        row.name,
        row.stage,
        row.score,
        uuid.UUID(bytes=row.run_id.bytes),  # asyncpg's own UUID type otherwise
        statuses,
        row.period,
        row.rules_digest,
        tuple(_hashable(v) for v in record.values()),
        row,
    )


async def stored_rules(session: AsyncSession, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rules as matched, for keys whose rule has changed since (rarely read)."""
    rows = await session.execute(
        text("SELECT rule_key, rule FROM policy.rule_matches WHERE rule_key = ANY(:keys)"),
        {"keys": list(keys)},
    )
    return {k: r for k, r in rows.tuples()}


@dataclass(frozen=True, slots=True)
class RuleSummary:
    rule_key: str
    fingerprint: str
    rule: dict[str, Any]
    near_max: int
    leaves: list[str]
    counts: dict[str, Any]


async def rule_summaries(session: AsyncSession, keys: Sequence[str] | None) -> list[RuleSummary]:
    """The stored rules of the current evaluation (of `keys`, or every one), without vectors."""
    rows = await session.execute(
        text(
            "SELECT rule_key, fingerprint, rule, near_max, leaves, counts FROM policy.rule_matches "
            "WHERE run_id IN (SELECT run_id FROM policy.evaluations) "
            "AND (CAST(:keys AS text[]) IS NULL OR rule_key = ANY(:keys))"
        ),
        {"keys": None if keys is None else list(keys)},
    )
    return [RuleSummary(k, f, r, n, list(lv), c) for k, f, r, n, lv, c in rows.tuples()]


async def enterprises_with_status(
    session: AsyncSession, key: str, status: int, stage: str | None, limit: int, offset: int
) -> list[PageRow]:
    """A page of the enterprises with `status` under rule `key`, best score first.

    The vector is read once, as an uncorrelated subquery (one InitPlan); `|| ''` makes it a
    plain value there, so each row's `get_byte` does not fetch it again.
    """
    rows = await session.execute(
        text(
            f"""
            SELECT f.uscc, f.name, f.stage, f.score, f.tier, f.facts, c.*
            FROM (
                SELECT f.* FROM policy.enterprise_facts f
                WHERE f.run_id = (SELECT run_id FROM policy.rule_matches WHERE rule_key = :key)
                  AND get_byte(
                        (SELECT statuses || ''::bytea FROM policy.rule_matches
                         WHERE rule_key = :key),
                        f.position) = :status
                  AND (CAST(:stage AS text) IS NULL OR coalesce(f.stage, 'unstaged') = :stage)
                ORDER BY f.score DESC NULLS LAST, f.uscc
                LIMIT :limit OFFSET :offset
            ) f
            CROSS JOIN LATERAL ({_COLUMN_ENTRIES}) c
            ORDER BY f.score DESC NULLS LAST, f.uscc
            """
        ),
        {"key": key, "status": status, "stage": stage, "limit": limit, "offset": offset},
    )
    found = list(rows)
    facts = _facts_of(found)
    return [
        PageRow(r.uscc, r.name, r.stage, r.score, r.tier, f)
        for r, f in zip(found, facts, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class PageRow:
    """An enterprise of a pool page, with its facts."""

    uscc: str
    name: str
    stage: str | None
    score: float | None
    tier: int | None
    facts: dict[str, Any]
