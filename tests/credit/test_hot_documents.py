"""Issue 11: credit's hot reads are one statement each on their own connections, their JSON
written by orjson (services/credit/reads.py). Their documents are the routes' own bytes for
every enterprise, sort, caller and state of an application, and every check of who may see
what stays in the service, down to the statement itself."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from services.credit.applications import hot as app_hot
from services.credit.lines import hot
from services.credit.reads import HotReads
from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld
from tests.hot_scope import get_scope

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
