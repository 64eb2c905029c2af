"""Issue 11: credit's hot reads are one statement each on their own connections, their JSON
written by orjson (services/credit/reads.py). Their documents are the routes' own bytes for
every enterprise, sort, caller and state of an application; what the statistics remember is
never served once the lines it stands for changed, in any replica; and every check of who
may see what stays in the service, down to the statement itself."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from services.credit.applications import hot as app_hot
from services.credit.lines import hot
from services.credit.reads import HotReads
from services.credit.stats import hot as stats_hot
from shared.connections import Connections
from shared.db import plain_url
from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld
from tests.hot_scope import get_scope
from tests.scoring_fixtures import publish_demo

SORTS = ("-amount", "amount", "rate", "-rate")
FIRM = "91330100000000000X"
TERMS = (
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


def _reads(world: CreditWorld) -> HotReads:
    reads: HotReads = world.app.state.hot_reads
    return reads


async def _route(client: httpx.AsyncClient, path: str) -> bytes:
    """The route's own answer: the hot handlers decline a query parameter they do not take,
    which FastAPI ignores."""
    r = await client.get(path + ("&" if "?" in path else "?") + "via=route")
    assert r.status_code == 200, (path, r.text)
    return r.content


async def _publish_copy(world: CreditWorld, bank_id: str, **changes: Any) -> str:
    """A second product of the bank with its seeded product's terms, changed as given."""
    async with world.bank(bank_id) as bank:
        seeded = (await bank.get(f"/v1/products/{SEEDED_PRODUCTS[bank_id]}")).json()
        terms = {k: seeded[k] for k in TERMS} | changes
        r = await bank.post("/v1/products", json=terms)
        assert r.status_code == 201, r.text
        pid = str(r.json()["id"])
        assert (await bank.post(f"/v1/products/{pid}/publish")).status_code == 200
    return pid


async def _act(world: CreditWorld, bank: str, aid: str, verb: str, body: Any = None) -> None:
    async with world.bank(bank) as b:
        r = await b.post(f"/v1/applications/{aid}/{verb}", json=body)
    assert r.status_code == 200, r.text


async def _applications_in_every_state(world: CreditWorld) -> list[str]:
    """Three firms with applications approved, disbursed, rejected, closed, withdrawn and
    submitted, to three banks; the firms' codes."""
    a, b, c = (s["uscc"] for s in await world.eligible(3))
    approve = {"decision": "approve", "amount": 90_000, "rate": 3.05, "term_months": 6}
    first = str((await world.submit(a, ICBC))["id"])
    await _act(world, ICBC, first, "decision", approve)
    await _act(world, ICBC, first, "disburse")
    rejected = str((await world.submit(a, HZUB, 200_000))["id"])
    reject = {"decision": "reject", "reason_codes": ["other", "incomplete_documents"]}
    await _act(world, HZUB, rejected, "decision", reject)
    await world.submit(b, ICBC, 50_000)
    withdrawn = str((await world.submit(b, HZBANK))["id"])
    async with world.enterprise(b) as firm:
        assert (await firm.post(f"/v1/applications/{withdrawn}/withdraw")).status_code == 200
    closed = str((await world.submit(c, HZUB))["id"])
    await _act(world, HZUB, closed, "decision", approve)
    await _act(world, HZUB, closed, "disburse")
    await _act(world, HZUB, closed, "close")
    approved = str((await world.submit(c, ICBC, 70_000))["id"])
    await _act(world, ICBC, approved, "decision", approve | {"amount": 60_000})
    return [a, b, c]


async def test_offers_are_the_routes_for_every_enterprise_and_sort(world: CreditWorld) -> None:
    # Two products of one bank on the same terms: offers equal in amount and rate from one
    # bank, which both answers order by product. And one not valid before 2999: offered by
    # neither.
    await _publish_copy(world, HZUB, name="同条款第二产品")
    await _publish_copy(world, ICBC, name="未生效产品", valid_from="2999-01-01")
    reads = _reads(world)
    seen: set[tuple[bool, str | None]] = set()
    async with world.government() as gov:
        for i, s in enumerate(await world.scores()):
            for sort in SORTS if i % 25 == 0 else SORTS[:1]:
                path = f"/v1/enterprises/{s['uscc']}/offers?sort={sort}"
                hot_body = await hot.offers_document(reads, s["uscc"], sort)
                assert hot_body == await _route(gov, path), (s["uscc"], sort)
            doc = json.loads(hot_body or b"{}")
            seen.add((doc["eligible"], doc["reason"]))
            if doc["eligible"]:
                assert "未生效产品" not in {o["product_name"] for o in doc["items"]}
    # Both kinds of answer, and the reasons for none, were compared.
    assert {(True, None), (False, "negative-list")} <= seen, seen


async def test_bank_reads_are_the_routes_in_every_state(world: CreditWorld) -> None:
    firms = await _applications_in_every_state(world)
    reads = _reads(world)
    platform = world.platform
    callers: list[tuple[str, str | None, httpx.AsyncClient]] = [
        ("government", None, world.government()),
        (ICBC, ICBC, world.bank(ICBC)),
        (HZUB, HZUB, world.bank(HZUB)),
        (HZBANK, HZBANK, world.bank(HZBANK)),
    ]
    for name, bank_id, client in callers:
        async with client as c:
            for uscc in firms:
                path = f"/v1/enterprises/{uscc}/approved-amounts"
                body = await hot.approved_document(reads, uscc, bank_id)
                r = await c.get(path + "?via=route")
                if r.status_code == 403:
                    # No consent to this bank: the statement itself returns nothing.
                    assert bank_id is not None and body is None, (name, uscc)
                    continue
                assert r.status_code == 200, r.text
                assert body == r.content, (name, uscc)
                doc = json.loads(body)
                if bank_id is not None:
                    assert {x["bank_id"] for x in doc["lines"] + doc["applications"]} == {bank_id}
            kind = "government" if bank_id is None else "bank"
            token = platform.token(kind, "credit", bank_id=bank_id)
            for query in ("", "limit=1", "limit=2&offset=1", "offset=3", "offset=50", "limit=500"):
                scope = get_scope(world.app, "/v1/applications", query.encode(), token)
                answer = await app_hot.list_applications(scope, {})
                assert answer is not None, (name, query)
                route = await _route(c, f"/v1/applications?{query}")
                assert answer.body == route, (name, query)
    for uscc in firms:
        async with world.enterprise(uscc) as firm:
            for query in ("", "limit=1&offset=1"):
                token = platform.token("enterprise", "credit", uscc=uscc)
                scope = get_scope(world.app, "/v1/applications", query.encode(), token)
                answer = await app_hot.list_applications(scope, {})
                assert answer is not None and answer.body == await _route(
                    firm, f"/v1/applications?{query}"
                )
                items = json.loads(answer.body)["items"]
                assert {x["uscc"] for x in items} == ({uscc} if items else set())
            path = f"/v1/enterprises/{uscc}/approved-amounts"
            assert await hot.approved_document(reads, uscc, None) == await _route(firm, path)


async def test_a_bank_reads_nothing_without_a_consent_in_force(world: CreditWorld) -> None:
    """The consent is the statement's own condition: called directly, without the route's
    check in front of it, the read still gives a bank nothing once the consent ended."""
    e = (await world.eligible())[0]["uscc"]
    reads = _reads(world)
    assert await hot.approved_document(reads, e, HZBANK) is None
    async with world.enterprise(e) as firm:
        assert (await firm.post("/v1/consents", json={"bank_id": HZBANK})).status_code == 201
    assert await hot.approved_document(reads, e, HZBANK) is not None
    assert await hot.approved_document(reads, e, HZUB) is None  # that consent is HZBANK's
    async with world.app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE credit.consents SET expires_at = now() - interval '1 second'")
        )
    assert await hot.approved_document(reads, e, HZBANK) is None  # expired
    async with world.app.state.engine.begin() as conn:
        await conn.execute(text("UPDATE credit.consents SET expires_at = NULL"))
    assert await hot.approved_document(reads, e, HZBANK) is not None
    async with world.enterprise(e) as firm:
        assert (await firm.delete(f"/v1/consents/{HZBANK}")).status_code == 204
    assert await hot.approved_document(reads, e, HZBANK) is None  # withdrawn
    async with world.bank(HZBANK) as bank:
        r = await bank.get(f"/v1/enterprises/{e}/approved-amounts")
    assert r.status_code == 403 and r.json()["type"].endswith("/no-consent")


async def test_only_the_government_and_services_get_the_statistics(world: CreditWorld) -> None:
    a = (await world.eligible())[0]["uscc"]
    platform = world.platform
    for token, status in [
        (None, 401),
        ("not-a-token", 401),
        (platform.token("government", "policy"), 401),
        (platform.token("bank", "credit", bank_id=ICBC), 403),
        (platform.token("enterprise", "credit", uscc=a), 403),
    ]:
        scope = get_scope(world.app, "/v1/stats", b"", token)
        assert await stats_hot.stats(scope, {}) is None
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with platform.client("credit") as anon:
            r = await anon.get("/v1/stats", headers=headers)
        assert r.status_code == status, (token, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    for kind in ("government", "service"):
        scope = get_scope(world.app, "/v1/stats", b"", platform.token(kind, "credit"))
        assert await stats_hot.stats(scope, {}) is not None
    scope = get_scope(world.app, "/v1/stats", b"via=route", platform.token("government", "credit"))
    assert await stats_hot.stats(scope, {}) is None


async def _generation(world: CreditWorld) -> int:
    async with world.app.state.engine.connect() as conn:
        value = (await conn.execute(text("SELECT generation FROM credit.line_generation"))).scalar()
    assert isinstance(value, int)
    return value


async def test_every_write_to_what_the_lines_are_computed_from_is_counted(
    world: CreditWorld,
) -> None:
    """The lines are computed when read from the scores and the published product versions:
    a statement writing any of them, whoever runs it, is counted with its transaction."""
    engine = world.app.state.engine
    one = "SELECT uscc FROM credit.enterprise_scores ORDER BY uscc LIMIT 1"
    statements = [
        f"UPDATE credit.enterprise_scores SET percentile = 0 WHERE uscc = ({one})",
        f"DELETE FROM credit.enterprise_scores WHERE uscc = ({one})",
        "INSERT INTO credit.enterprise_scores (run_id, uscc, name, stage, scored) "
        f"SELECT run_id, '{FIRM}', 'x', 'growth', true FROM credit.evaluations",
        f"UPDATE credit.products SET status = 'withdrawn' WHERE id = '{SEEDED_PRODUCTS[ICBC]}'",
        f"UPDATE credit.product_versions SET max_amount = 1 "
        f"WHERE product_id = '{SEEDED_PRODUCTS[HZBANK]}'",
        "TRUNCATE credit.enterprise_scores",
    ]
    for sql in statements:
        before = await _generation(world)
        async with engine.connect() as conn:
            await conn.execute(text(sql))
            await conn.rollback()
        assert await _generation(world) == before, sql  # rolled back: nothing to count
        async with engine.begin() as conn:
            await conn.execute(text(sql))
        assert await _generation(world) > before, sql
    before = await _generation(world)
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        run_id = await raw.fetchval("SELECT run_id FROM credit.evaluations")
        await raw.copy_records_to_table(
            "enterprise_scores",
            schema_name="credit",
            columns=["run_id", "uscc", "name", "scored"],
            records=[(run_id, FIRM, "x", True)],
        )
    assert await _generation(world) > before


async def test_the_statistics_are_the_routes_and_never_stale(world: CreditWorld) -> None:
    reads = _reads(world)
    base = world.app.state.settings.base_line_amount
    # Another replica: its own process state, the same database.
    replica = HotReads(await Connections.open(plain_url(world.app.state.database_url), 2))

    async def same() -> dict[str, Any]:
        async with world.government() as gov:
            route = await _route(gov, "/v1/stats")
        for r in (reads, replica):
            assert await stats_hot.stats_document(r, base) == route
        doc: dict[str, Any] = json.loads(route)
        return doc

    try:
        first = await same()
        assert first["coverage"]["scored_enterprises"] > 0
        await _applications_in_every_state(world)
        figures = await same()
        assert figures["totals"]["applications"] == 6 and figures["reason_codes"]
        assert figures["coverage"] == first["coverage"]

        # What a process holds is what it answers while the lines stay as they were...
        held = reads.memo["stats.coverage"]
        reads.memo["stats.coverage"] = (*held[:3], {"growth": (7, 7, 0, 7, 7)})
        doc = json.loads(await stats_hot.stats_document(reads, base) or b"")
        assert doc["coverage"]["scored_enterprises"] == 7
        # ... and never once they changed, by whichever replica or writer.
        rule = {
            "basis": "percentile",
            "base_amount": 600_000,
            "bands": [{"min": 0.9, "amount": 10_000_000}],
        }
        pid = await _publish_copy(world, HZBANK, name="基础额度更高", line_rule=rule)
        published = await same()
        higher = published["coverage"]["pre_approved_total"]
        assert higher > first["coverage"]["pre_approved_total"]
        async with world.bank(HZBANK) as bank:
            assert (await bank.post(f"/v1/products/{pid}/withdraw")).status_code == 200
        withdrawn = await same()
        assert withdrawn["coverage"] == first["coverage"]

        # A score changed by plain SQL: its lines follow at once, and so does the coverage.
        above = "SELECT uscc FROM credit.credit_lines WHERE amount > 500000 ORDER BY uscc LIMIT 1"
        async with world.app.state.engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE credit.enterprise_scores SET percentile = 0 WHERE uscc = ({above})")
            )
        lowered = await same()
        total = lowered["coverage"]["pre_approved_total"]
        assert total < withdrawn["coverage"]["pre_approved_total"]

        # Another base amount is another key: what was held for one is not given for the other.
        other_base = json.loads(await stats_hot.stats_document(reads, 10**12) or b"")
        assert other_base["coverage"]["covered_enterprises"] == 0
        assert other_base["coverage"]["base_amount"] == 10**12
        await same()

        # A new evaluation: a new run, new scores and lines.
        new_run = await publish_demo(world.platform, n=300, seed=3, period=2025)
        world.run_id = new_run
        assert (await world.sync()).imported == [new_run]
        renewed = await same()
        assert renewed["evaluation"]["run_id"] == new_run
        assert renewed["coverage"] != lowered["coverage"]
    finally:
        await replica.connections.close()
