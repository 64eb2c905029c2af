"""Lines from the published evaluation: coverage, offers, recomputation, catching up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.credit.conftest import DEMO_SIZE, HZBANK, ICBC, SEEDED_PRODUCTS, CreditWorld
from tests.platform import Platform
from tests.scoring_fixtures import publish_demo


async def _scalar(world: CreditWorld, sql: str, **params: Any) -> Any:
    async with world.app.state.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def test_seeded_products_give_95_percent_of_scored_enterprises_the_base_line(
    world: CreditWorld,
) -> None:
    scores = await world.scores()
    scored = [s for s in scores if s["scored"]]
    async with world.app.state.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT uscc, max(amount) FROM credit.credit_lines GROUP BY uscc")
        )
        best = {row[0]: row[1] for row in rows}
    covered = sum(1 for s in scored if best.get(s["uscc"], 0) >= 500_000)
    assert covered / len(scored) >= 0.95
    # The same figure through the government statistics.
    async with world.government() as gov:
        stats = (await gov.get("/v1/stats")).json()
    cov = stats["coverage"]
    assert cov["scored_enterprises"] == len(scored)
    assert cov["covered_enterprises"] == covered
    assert cov["ratio"] >= 0.95
    assert {s["stage"] for s in stats["by_stage"]} >= {"seed", "seedling", "growth"}
    # Three seeded products: every scored firm has three lines, the excluded none.
    lines = await _scalar(world, "SELECT count(*) FROM credit.credit_lines")
    assert lines == 3 * len(scored)
    for s in scores:
        if s["exclusion"]:
            assert s["uscc"] not in best


async def test_offers_with_evidence_sorted_by_amount_or_rate(world: CreditWorld) -> None:
    top = max(await world.eligible(50), key=lambda s: s["percentile"])
    async with world.enterprise(top["uscc"]) as c:
        r = await c.get(f"/v1/enterprises/{top['uscc']}/offers", params={"sort": "rate"})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["eligible"] is True and body["total"] == 3
    assert [o["rate_min"] for o in body["items"]] == sorted(o["rate_min"] for o in body["items"])
    offer = body["items"][0]
    for key in (
        "product_id",
        "bank_id",
        "bank_name",
        "hotline",
        "amount",
        "rate_min",
        "rate_max",
        "term_months",
    ):
        assert key in offer
    assert body["score"]["run_id"] == world.run_id
    assert body["score"]["percentile"] == top["percentile"]
    expected = (
        10_000_000
        if top["percentile"] >= 0.9
        else 3_000_000
        if top["percentile"] >= 0.7
        else 1_000_000
        if top["percentile"] >= 0.4
        else 500_000
    )
    assert {o["amount"] for o in body["items"]} == {expected}
    async with world.enterprise(top["uscc"]) as c:
        desc = (await c.get(f"/v1/enterprises/{top['uscc']}/offers?sort=-rate")).json()
    assert [o["bank_id"] for o in desc["items"]] == [o["bank_id"] for o in body["items"]][::-1]


async def test_offers_explain_negative_list_unknown_and_malformed(world: CreditWorld) -> None:
    excluded = next(s for s in await world.scores() if s["exclusion"])
    async with world.government() as gov:
        r = await gov.get(f"/v1/enterprises/{excluded['uscc']}/offers")
        assert r.status_code == 200
        assert r.json()["eligible"] is False
        assert r.json()["reason"] == "negative-list"
        assert r.json()["items"] == []
        r = await gov.get("/v1/enterprises/91330108000000001X/offers")
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/invalid-uscc")
        from stdnum.cn import uscc as std

        valid_unknown = "91330108000000099" + std.calc_check_digit("91330108000000099")
        r = await gov.get(f"/v1/enterprises/{valid_unknown}/offers")
        assert r.status_code == 404
        assert r.json()["type"].endswith("/unknown-enterprise")


async def test_resync_is_idempotent(world: CreditWorld) -> None:
    before = await _scalar(
        world,
        "SELECT md5(string_agg(uscc || product_id::text || amount, ',' "
        "ORDER BY uscc, product_id)) FROM credit.credit_lines",
    )
    report = await world.sync()
    assert report.imported == [] and report.events == 0
    # Rewind the cursor: re-reading the same events changes nothing.
    async with world.app.state.engine.begin() as conn:
        await conn.execute(text("UPDATE credit.consumer_cursors SET position = 0"))
    report = await world.sync()
    assert report.imported == [] and report.events >= 1
    after = await _scalar(
        world,
        "SELECT md5(string_agg(uscc || product_id::text || amount, ',' "
        "ORDER BY uscc, product_id)) FROM credit.credit_lines",
    )
    assert before == after


async def test_evaluation_published_while_credit_was_down_is_caught_up(
    world: CreditWorld,
) -> None:
    platform: Platform = world.platform
    await platform.stop("credit")
    # A new run of the same period (a re-import with more firms), published meanwhile.
    new_run = await publish_demo(platform, n=600, seed=2, period=2025)
    await platform.start("credit", sync_interval=0, outbox_interval=0)
    world.run_id = new_run
    report = await world.sync()
    assert report.imported == [new_run]
    runs = await _scalar(world, "SELECT array_agg(run_id::text) FROM credit.evaluations")
    assert runs == [new_run]
    assert await _scalar(world, "SELECT count(DISTINCT run_id) FROM credit.credit_lines") == 1
    assert await _scalar(world, "SELECT min(run_id::text) FROM credit.credit_lines") == new_run
    # The previous run's scores went with their partition: the new run's is the only one.
    partitions = await _scalar(
        world,
        "SELECT array_agg(c.relname::text) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'credit.enterprise_scores'::regclass",
    )
    assert partitions == ["enterprise_scores_" + new_run.replace("-", "")]
    assert await _scalar(world, "SELECT count(DISTINCT run_id) FROM credit.enterprise_scores") == 1


async def test_scoring_down_leaves_the_cursor_where_it_was(world: CreditWorld) -> None:
    import pytest

    from shared.errors import UpstreamError

    position = await _scalar(world, "SELECT position FROM credit.consumer_cursors")
    await world.platform.stop("scoring")
    with pytest.raises(UpstreamError):
        await world.sync()
    assert await _scalar(world, "SELECT position FROM credit.consumer_cursors") == position


async def test_new_product_version_recomputes_its_lines_only(world: CreditWorld) -> None:
    pid = SEEDED_PRODUCTS[ICBC]
    async with world.bank(ICBC) as bank:
        current = (await bank.get(f"/v1/products/{pid}")).json()
        terms = {
            k: current[k]
            for k in (
                "name",
                "description",
                "eligible_stages",
                "min_tier",
                "min_percentile",
                "line_rule",
                "max_amount",
                "rate_min",
                "rate_max",
                "term_months",
                "guarantee",
                "valid_from",
                "valid_to",
            )
        }
        terms["eligible_stages"] = ["growth", "expansion", "mature"]
        terms["line_rule"] = {**terms["line_rule"], "base_amount": 800_000}
        r = await bank.put(f"/v1/products/{pid}", json=terms)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2 and r.json()["published_version"] == 1
        # The draft changes nothing yet.
        assert (
            await _scalar(
                world,
                "SELECT max(product_version) FROM credit.credit_lines WHERE product_id = :p",
                p=pid,
            )
            == 1
        )
        r = await bank.post(f"/v1/products/{pid}/publish")
        assert r.status_code == 200, r.text
        assert r.json()["published_version"] == 2
    stages = await _scalar(
        world,
        "SELECT array_agg(DISTINCT s.stage ORDER BY s.stage) FROM credit.credit_lines l "
        "JOIN credit.enterprise_scores s USING (uscc) WHERE l.product_id = :p",
        p=pid,
    )
    assert stages == ["expansion", "growth", "mature"]
    assert (
        await _scalar(
            world, "SELECT min(amount) FROM credit.credit_lines WHERE product_id = :p", p=pid
        )
        == 800_000
    )
    # Another bank's product is untouched.
    assert (
        await _scalar(
            world,
            "SELECT min(amount) FROM credit.credit_lines WHERE product_id = :p",
            p=SEEDED_PRODUCTS[HZBANK],
        )
        == 500_000
    )


async def test_withdrawn_product_disappears_from_offers(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    async with world.bank(HZBANK) as bank:
        r = await bank.post(f"/v1/products/{SEEDED_PRODUCTS[HZBANK]}/withdraw")
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"
        again = await bank.post(f"/v1/products/{SEEDED_PRODUCTS[HZBANK]}/withdraw")
        assert again.status_code == 409
    async with world.enterprise(e["uscc"]) as c:
        offers = (await c.get(f"/v1/enterprises/{e['uscc']}/offers")).json()
    assert HZBANK not in {o["bank_id"] for o in offers["items"]}
    assert offers["total"] == 2


async def test_the_lines_served_are_the_pure_rule(world: CreditWorld) -> None:
    """The view `credit_lines` (what is served) and `compute_lines` (the reference) give the
    same lines: over the demo's scores and scores with every edge the rule has (no score or
    tier, a value on a band's minimum, an exclusion of '', a stage no product lists), for
    products of every shape (tier basis, minimums, no bands, two bands of one minimum, a cap
    below the bands, no eligible stage)."""
    import random

    from services.credit.lines.rules import compute_lines
    from services.credit.lines.service import load_scores, published_rules

    variants = [
        {
            "eligible_stages": ["growth", "mature"],
            "min_tier": 3,
            "line_rule": {
                "basis": "tier",
                "base_amount": 200_000,
                "bands": [{"min": 5, "amount": 4_000_000}, {"min": 4, "amount": 900_000}],
            },
            "max_amount": 2_000_000,
        },
        {
            "eligible_stages": ["seed", "seedling", "expansion"],
            "min_percentile": 0.25,
            "line_rule": {"base_amount": 0, "bands": [{"min": 0.5, "amount": 700_000}]},
            "max_amount": 700_000,
        },
        {
            "eligible_stages": ["seedling"],
            "line_rule": {"base_amount": 123_456},
            "max_amount": 123_456,
        },
        {
            "eligible_stages": ["seed", "growth", "mature"],
            "line_rule": {
                "base_amount": 100_000,
                "bands": [
                    {"min": 0.4, "amount": 300_000},
                    {"min": 0.9, "amount": 900_000},
                    {"min": 0.4, "amount": 400_000},
                    {"min": 0.0, "amount": 150_000},
                ],
            },
            "max_amount": 350_000,
        },
    ]
    async with world.bank(HZBANK) as bank:
        for v in variants:
            body = {"name": "variant", "rate_min": 3, "rate_max": 4, "term_months": 12, **v}
            pid = (await bank.post("/v1/products", json=body)).json()["id"]
            assert (await bank.post(f"/v1/products/{pid}/publish")).status_code == 200
    pid_of_last = pid
    rng = random.Random(5)
    stages = ["seed", "seedling", "growth", "expansion", "mature", None, "unheard-of"]
    rows = []
    for i in range(2000):
        excluded = rng.random() < 0.05
        rows.append(
            {
                "uscc": f"SYN{i:05d}",
                "stage": rng.choice(stages),
                "scored": rng.random() > 0.05,
                "exclusion": rng.choice(["negative_list:x", "no_revenue", ""])
                if excluded
                else None,
                "percentile": None
                if rng.random() < 0.05
                else rng.choice([0.0, 0.25, 0.4, 0.5, 0.7, 0.9, 1.0, rng.random()]),
                "tier": None if rng.random() < 0.05 else rng.randint(1, 5),
            }
        )
    async with world.app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO credit.enterprise_scores (run_id, uscc, name, stage, scored, "
                "exclusion, percentile, tier) SELECT (SELECT run_id FROM credit.evaluations), "
                ":uscc, 'synthetic', :stage, :scored, :exclusion, :percentile, :tier"
            ),
            rows,
        )
    maker = world.app.state.sessionmaker
    async with maker() as session:
        rules = await published_rules(session)
        evaluation_run = await _scalar(world, "SELECT run_id FROM credit.evaluations")
        scores = await load_scores(session, evaluation_run)
    expected = {
        (ln.uscc, ln.product_id, ln.version, ln.amount, ln.band)
        for ln in compute_lines(scores, rules)
    }
    async with world.app.state.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT uscc, product_id::text, product_version, amount, band "
                "FROM credit.credit_lines"
            )
        )
        actual = {tuple(r) for r in result}
    assert len(rules) == 7 and len(scores) == DEMO_SIZE + len(rows)
    assert actual == expected
    # Every edge was met: lines of every product; of the last variant a capped band, the
    # first of the two tied bands (never the second), the band at 0 and the base.
    assert {pid for _, pid, *_ in actual} == {r.product_id for r in rules}
    last = {(a, b) for _, pid, _, a, b in actual if pid == pid_of_last}
    assert last == {(350_000, 0), (300_000, 1), (150_000, 3), (100_000, -1)}


async def test_a_stored_score_has_its_lines_at_once(world: CreditWorld) -> None:
    """Lines are computed when read: a score stored, however it got there, has its lines
    with nothing recomputed; an exclusion of '' leaves it clear, the negative list not."""
    async with world.app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO credit.enterprise_scores (run_id, uscc, name, stage, scored, "
                "exclusion, percentile, tier) SELECT run_id, u, 'x', 'growth', true, e, 0.95, 5 "
                "FROM credit.evaluations, (VALUES ('SHORT1', NULL), ('EMPTY1', ''), "
                "('NEGATIVE1', 'negative_list:tax')) v(u, e)"
            )
        )
    for uscc, amounts in (
        ("SHORT1", [10_000_000] * 3),
        ("EMPTY1", [10_000_000] * 3),
        ("NEGATIVE1", None),
    ):
        assert (
            await _scalar(
                world,
                "SELECT array_agg(amount) FROM credit.credit_lines WHERE uscc = :u",
                u=uscc,
            )
            == amounts
        )
