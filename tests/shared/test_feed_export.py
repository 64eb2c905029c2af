"""Credit and policy importing a published run from scoring's CSV export: the same rows and
cleaned facts as the paged endpoint gives, and a failing export leaves nothing written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from services.credit.evaluations.sync import ScoringClient as CreditScoring
from services.credit.evaluations.sync import import_evaluation, sync_evaluations
from services.credit.lines.rules import ScoreFacts, compute_lines
from services.credit.lines.service import published_rules
from services.credit.models import Evaluation
from services.policy.matching.population import encode_columns, enterprises_of, population_of
from services.policy.matching.repository import enterprise_entry
from services.policy.matching.sync import sync_evaluations as policy_sync
from shared.errors import UpstreamError
from shared.feed import Export
from tests.platform import Platform
from tests.scoring_fixtures import publish_demo

N = 180


async def _pages(platform: Platform, run_id: str, include: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    async with platform.client("scoring", "service") as svc:
        while True:
            params: dict[str, Any] = {"limit": 50, **({"include": include} if include else {})}
            if after:
                params["after"] = after
            page = (await svc.get(f"/v1/evaluations/{run_id}/scores", params=params)).json()
            items += page["items"]
            after = page["next_after"]
            if after is None:
                return items


async def test_credit_imports_the_rows_the_pages_give(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=11)
    await platform.start("credit", sync_interval=0, outbox_interval=0)
    app = platform.fastapi["credit"]
    report = await sync_evaluations(app)
    assert report.imported == [run_id]
    fields: tuple[str, ...] = ("uscc", "name", "stage", "scored", "exclusion", "total")
    fields += ("rank", "cohort_size", "percentile", "tier")
    async with app.state.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    f"SELECT {', '.join(fields)} FROM credit.enterprise_scores "
                    "WHERE run_id = :r ORDER BY uscc"
                ),
                {"r": run_id},
            )
        ).all()
        evaluation = await session.get(Evaluation, uuid.UUID(run_id))
    pages = await _pages(platform, run_id, None)
    assert [tuple(r) for r in rows] == [tuple(p[f] for f in fields) for p in pages]
    assert evaluation is not None and evaluation.enterprise_count == N
    assert evaluation.scored_count == sum(p["scored"] and p["exclusion"] is None for p in pages)


async def test_credit_serves_the_lines_of_the_scores_it_took_in(platform: Platform) -> None:
    """The lines served after a catch-up are the rule over the run's scores as the pages
    give them (nothing of the export is read back or recomputed: they are computed when
    read from what was stored)."""
    run_id = await publish_demo(platform, n=N, seed=14)
    await platform.start("credit", sync_interval=0, outbox_interval=0)
    app = platform.fastapi["credit"]
    assert (await sync_evaluations(app)).imported == [run_id]
    scores = [
        ScoreFacts(p["uscc"], p["stage"], p["scored"], p["exclusion"], p["percentile"], p["tier"])
        for p in await _pages(platform, run_id, None)
    ]
    async with app.state.sessionmaker() as session:
        rules = await published_rules(session)
        rows = (
            await session.execute(
                text(
                    "SELECT uscc, product_id::text, product_version, amount, band "
                    "FROM credit.credit_lines WHERE run_id = :r"
                ),
                {"r": run_id},
            )
        ).all()
    expected = {
        (ln.uscc, ln.product_id, ln.version, ln.amount, ln.band)
        for ln in compute_lines(scores, rules)
    }
    assert {tuple(r) for r in rows} == expected
    assert len({s.stage for s in scores}) > 2 and len(expected) > N  # stages, products


async def test_policy_stores_what_it_stored_from_the_pages(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=12)
    await platform.start("policy", sync_interval=0)
    app = platform.fastapi["policy"]
    assert (await policy_sync(app)).imported == [run_id]
    expected = enterprises_of(await _pages(platform, run_id, "facts"))
    async with app.state.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT uscc, position, name, stage, score, tier, facts "
                    "FROM policy.enterprise_facts WHERE run_id = :r ORDER BY position"
                ),
                {"r": run_id},
            )
        ).all()
        columns = (
            await session.execute(
                text(
                    "SELECT name, dtype, vocabulary, data FROM policy.population_columns "
                    "WHERE run_id = :r ORDER BY name"
                ),
                {"r": run_id},
            )
        ).all()
    assert len(rows) == len(expected) == N
    for i, (row, e) in enumerate(zip(rows, expected, strict=True)):
        tier = e.facts.get("tier")
        assert tuple(row[:6]) == (
            e.uscc,
            i,
            e.name,
            e.facts.get("stage"),
            e.facts.get("score"),
            int(tier) if tier is not None else None,
        )
        # The facts are not stored twice: what an explanation reads is built from the
        # enterprise's entry in the columns, and is the cleaned facts of the pages' item.
        async with app.state.sessionmaker() as session:
            entry = await enterprise_entry(session, e.uscc)
        assert entry is not None and entry.facts == e.facts, e.uscc
    stored = sorted((n, d, v, bytes(b)) for n, d, v, b in columns)
    assert stored == sorted(encode_columns(population_of(expected)))


async def test_a_failing_export_leaves_nothing_written(platform: Platform) -> None:
    await publish_demo(platform, n=20, seed=13)
    await platform.start("credit", sync_interval=0, outbox_interval=0)
    app = platform.fastapi["credit"]
    unknown = {"run_id": str(uuid.uuid4()), "period": 2025, "model_version": "x"}
    with pytest.raises(UpstreamError, match="404"):
        async with app.state.sessionmaker() as session, session.begin():
            await import_evaluation(session, CreditScoring(app), 1, unknown)
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Evaluation)) == 0


def test_a_body_with_other_rows_than_announced_is_refused() -> None:
    async def nothing() -> Any:
        yield b""

    export = Export(3, ["uscc"], "scoring /x", nothing())
    export.check(3)
    with pytest.raises(UpstreamError, match="2 rows read, 3 announced"):
        export.check(2)
