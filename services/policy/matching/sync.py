"""Following the scoring service: a published evaluation becomes this service's population.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
stores the evaluation's facts and rewrites the matches, so an event is either fully applied or
not at all: after a crash, or while this service was down, the next sync resumes from the
cursor and misses nothing. Re-reading an event already applied changes nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import structlog
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import raw_connection
from services.policy.matching.export_store import names_in_order, write_rows
from services.policy.matching.population import (
    Population,
    clean_facts,
    encode_columns,
    enterprise_facts,
    enterprises_of,
    export_order,
    population_from_export,
    population_of,
    read_export,
)
from services.policy.matching.repository import write_columns
from services.policy.matching.service import (
    Matching,
    active_rules,
    current_evaluation,
    lock,
    recompute,
)
from services.policy.models import ConsumerCursor, Evaluation
from services.policy.settings import PolicySettings
from shared import partitions
from shared.errors import UpstreamError
from shared.feed import FeedConsumer, FeedReport, open_export, payload_of
from shared.service_client import ServiceClient

log = structlog.get_logger("policy.sync")

CURSOR = "scoring.events"
FACT_COLUMNS = ("uscc", "run_id", "position", "name", "stage", "score", "tier", "facts")


@dataclass
class SyncReport(FeedReport):
    """The shared feed report, plus the pushes the new matches caused."""

    pushes: int = 0


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: PolicySettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


async def store_evaluation(
    session: AsyncSession,
    run_id: uuid.UUID,
    period: int,
    model_version: str,
    event_id: int,
    pages: Iterable[list[Mapping[str, Any]]] | None = None,
    *,
    items: Iterable[Mapping[str, Any]] = (),
) -> Evaluation:
    """Replace the population with this run's enterprises (items in scoring's bulk shape):
    a row each, and their facts as columns (what matching reads and explanations slice).

    The previous run's rows go at the end (their partition dropped, `shared.partitions`):
    from there readers of the facts wait for the caller's commit.
    """
    conn = await raw_connection(session)
    await conn.execute("DELETE FROM policy.evaluations")
    enterprises = enterprises_of(chain(items, *(pages or ())))
    evaluation = Evaluation(
        run_id=run_id,
        period=period,
        model_version=model_version,
        event_id=event_id,
        enterprise_count=len(enterprises),
    )
    session.add(evaluation)
    await session.flush()
    records = []
    for position, e in enumerate(enterprises):
        tier = e.facts.get("tier")
        records.append(
            (
                e.uscc,
                run_id,
                position,
                e.name,
                e.facts.get("stage"),
                e.facts.get("score"),
                int(tier) if tier is not None else None,
                None,  # the facts are the population's columns (`export_store`)
            )
        )
    table = await partitions.fresh_run_partition(conn, "policy", "enterprise_facts", run_id)
    if records:
        await conn.copy_records_to_table(
            table, schema_name="policy", columns=FACT_COLUMNS, records=records
        )
    await partitions.attach_run_partition(conn, "policy", "enterprise_facts", table, run_id)
    await write_columns(session, run_id, encode_columns(population_of(enterprises)))
    # Matches stored for this run id were for the population it replaces: not a baseline
    # for what is new (a run is stored once by the sync; this guards a store repeated).
    await conn.execute("UPDATE policy.rule_matches SET pushed = false WHERE run_id = $1", run_id)
    await partitions.drop_other_runs(conn, "policy", "enterprise_facts", run_id)
    return evaluation


def _read(path: str) -> tuple[Population, npt.NDArray[np.bytes_]]:
    table = read_export(path)
    ordered = export_order(table)
    return population_from_export(table, ordered), names_in_order(table, ordered[1])


async def read_run(
    scoring: ServiceClient, run_id: uuid.UUID
) -> tuple[Population, npt.NDArray[np.bytes_]]:
    """The run's population and its enterprises' names (position order), from scoring's CSV
    export: streamed to a temporary file (never the body in memory; a read timeout per
    chunk, not per page), columns built by pyarrow and numpy."""
    with tempfile.NamedTemporaryFile(prefix="policy-run-", suffix=".csv") as f:
        path = f"/v1/evaluations/{run_id}/scores/export"
        async with open_export(scoring, path, {"include": "facts"}) as export:
            async for chunk in export.chunks():
                f.write(chunk)
            f.flush()
            try:
                population, names = await asyncio.to_thread(_read, f.name)
            except (pa.ArrowException, ValueError) as exc:
                raise UpstreamError(f"{export.label}: unreadable export: {exc}") from exc
            export.check(population.n)
    return population, names


async def store_population(
    session: AsyncSession,
    run_id: uuid.UUID,
    period: int,
    model_version: str,
    event_id: int,
    population: Population,
    names: npt.NDArray[np.bytes_],
) -> Evaluation:
    """Replace the stored population with `population` (under `lock`): the evaluation, the
    enterprises' rows with one binary COPY into the run's fresh partition (attached, its
    indexes built once), the fact columns. Same rows and columns as `store_evaluation`
    stores from the pages' items. The previous run's rows stay until `drop_previous`."""
    conn = await raw_connection(session)
    await conn.execute("DELETE FROM policy.evaluations")
    evaluation = Evaluation(
        run_id=run_id,
        period=period,
        model_version=model_version,
        event_id=event_id,
        enterprise_count=population.n,
    )
    session.add(evaluation)
    await session.flush()
    table = await partitions.fresh_run_partition(conn, "policy", "enterprise_facts", run_id)
    written = await write_rows(conn, table, population, names)
    if written != population.n:
        raise UpstreamError(f"{written} enterprises stored of {population.n}")
    await partitions.attach_run_partition(conn, "policy", "enterprise_facts", table, run_id)
    await write_columns(session, run_id, encode_columns(population))
    await conn.execute("UPDATE policy.rule_matches SET pushed = false WHERE run_id = $1", run_id)
    return evaluation


async def drop_previous(session: AsyncSession, run_id: uuid.UUID) -> None:
    """The previous runs' rows gone (their partitions dropped): the last step before the
    commit, as from here readers of the facts wait for it (`shared.partitions`)."""
    conn = await raw_connection(session)
    await partitions.drop_other_runs(conn, "policy", "enterprise_facts", run_id)


async def apply_event(
    session: AsyncSession, scoring: ServiceClient, event: Mapping[str, Any], report: SyncReport
) -> None:
    payload = payload_of(event, "evaluation.published", report)
    if payload is None:
        return
    run_id = uuid.UUID(str(payload["run_id"]))
    period = int(payload["period"])
    current = await current_evaluation(session)
    if current is not None and (current.run_id == run_id or period < current.period):
        # Already applied, or a re-publication of an older period: the newer facts stay.
        report.skipped += 1
        return
    # Everything from scoring is read before anything is written, so a failing page leaves
    # the current population (and the cursor) as they were.
    started = time.perf_counter()
    # A million rows go through a few statements here, each run once: JIT compiling them
    # cost seconds apiece (EXPLAIN ANALYZE), and the sorts fit in memory at 128 MB.
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    population, names = await read_run(scoring, run_id)
    settings: PolicySettings = scoring.settings
    await lock(session)
    # The matching (seconds of numpy) runs while the population is written (seconds of the
    # server's), not after it.
    matching = Matching.start(await active_rules(session), population, settings.near_max)
    try:
        evaluation = await store_population(
            session,
            run_id,
            period,
            str(payload.get("model_version", "")),
            int(event["id"]),
            population,
            names,
        )
        imported = time.perf_counter() - started
        result = await recompute(
            session, near_max=settings.near_max, population=population, matching=matching
        )
    finally:
        await matching.settle()
    await drop_previous(session, run_id)
    report.imported.append(str(run_id))
    report.pushes += result.pushes
    log.info(
        "evaluation matched",
        run_id=str(run_id),
        period=period,
        enterprises=evaluation.enterprise_count,
        rules=len(result.rules),
        pushes=result.pushes,
        seconds=round(result.seconds, 3),
        import_seconds=round(imported, 3),
    )


FEED = FeedConsumer(ConsumerCursor, CURSOR, apply_event, event_type="evaluation.published")


async def sync_evaluations(app: FastAPI) -> SyncReport:
    """Apply every scoring event after the cursor, each in its own transaction."""
    settings: PolicySettings = app.state.settings
    return await FEED.catch_up(
        app.state.sessionmaker, ScoringClient(app), settings.events_batch, SyncReport()
    )


# Moved to `population` with the rest of the cleaning; still importable from here.
__all__ = [
    "FEED",
    "SyncReport",
    "apply_event",
    "clean_facts",
    "drop_previous",
    "enterprise_facts",
    "read_run",
    "store_evaluation",
    "store_population",
    "sync_evaluations",
]
