"""Applications: the lifecycle, every refused transition, idempotency, bad input."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld

P_ICBC = SEEDED_PRODUCTS[ICBC]


async def _count(world: CreditWorld, table: str) -> int:
    async with world.app.state.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM credit.{table}"))).scalar_one())


async def _apply(
    world: CreditWorld,
    uscc: str,
    product: str = P_ICBC,
    amount: int = 300_000,
    key: str | None = None,
    **extra: Any,
) -> Any:
    async with world.enterprise(uscc) as c:
        return await c.post(
            "/v1/applications",
            json={"product_id": product, "amount": amount, **extra},
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
        )


async def test_full_lifecycle_with_history(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    r = await _apply(world, e["uscc"], amount=400_000, term_months=6)
    assert r.status_code == 201, r.text
    app = r.json()
    assert r.headers["location"] == f"/v1/applications/{app['id']}"
    assert app["status"] == "submitted" and app["product_version"] == 1
    assert app["evidence"]["run_id"] == world.run_id
    assert app["evidence"]["line_amount"] >= 500_000
    aid = app["id"]
    async with world.bank(ICBC) as bank:
        r = await bank.post(f"/v1/applications/{aid}/review", json={"note": "documents ok"})
        assert r.status_code == 200 and r.json()["status"] == "under_review"
        r = await bank.post(
            f"/v1/applications/{aid}/decision",
            json={"decision": "approve", "amount": 350_000, "rate": 3.1, "term_months": 6},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["approved_amount"], r.json()["approved_rate"]) == (350_000, 3.1)
        r = await bank.post(f"/v1/applications/{aid}/disburse")
        assert r.status_code == 200 and r.json()["disbursed_amount"] == 350_000
        r = await bank.post(f"/v1/applications/{aid}/close", json={"note": "repaid"})
        assert r.status_code == 200 and r.json()["status"] == "closed"
    async with world.enterprise(e["uscc"]) as c:
        detail = (await c.get(f"/v1/applications/{aid}")).json()
    steps = [(h["from_status"], h["to_status"], h["actor_kind"]) for h in detail["history"]]
    assert steps == [
        (None, "submitted", "enterprise"),
        ("submitted", "under_review", "bank"),
        ("under_review", "approved", "bank"),
        ("approved", "disbursed", "bank"),
        ("disbursed", "closed", "bank"),
    ]
    assert detail["history"][1]["note"] == "documents ok"
    assert detail["history"][1]["actor"] == ICBC


# How to bring an application to each status, and what each action needs.
PATHS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "submitted": [],
    "under_review": [("bank", "review", None)],
    "approved": [("bank", "decision", {"decision": "approve", "amount": 100_000, "rate": 3.0})],
    "rejected": [
        (
            "bank",
            "decision",
            {"decision": "reject", "reason_codes": ["insufficient_repayment_capacity"]},
        )
    ],
    "withdrawn": [("enterprise", "withdraw", None)],
    "disbursed": [
        ("bank", "decision", {"decision": "approve", "amount": 100_000, "rate": 3.0}),
        ("bank", "disburse", None),
    ],
    "closed": [
        ("bank", "decision", {"decision": "approve", "amount": 100_000, "rate": 3.0}),
        ("bank", "disburse", None),
        ("bank", "close", None),
    ],
}
ACTIONS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "review": ("bank", "review", None),
    "approve": ("bank", "decision", {"decision": "approve", "amount": 100_000, "rate": 3.0}),
    "reject": ("bank", "decision", {"decision": "reject", "reason_codes": ["other"]}),
    "withdraw": ("enterprise", "withdraw", None),
    "disburse": ("bank", "disburse", None),
    "close": ("bank", "close", None),
}
ALLOWED = {
    "submitted": {"review", "approve", "reject", "withdraw"},
    "under_review": {"approve", "reject", "withdraw"},
    "approved": {"withdraw", "disburse"},
    "rejected": set(),
    "withdrawn": set(),
    "disbursed": {"close"},
    "closed": set(),
}


async def test_every_transition_is_allowed_or_refused_with_409(world: CreditWorld) -> None:
    cases = [(s, a) for s in PATHS for a in ACTIONS]
    firms = await world.eligible(len(cases))
    for (status, action), firm in zip(cases, firms, strict=True):
        uscc = firm["uscc"]
        r = await _apply(world, uscc, amount=100_000)
        assert r.status_code == 201, r.text
        aid = r.json()["id"]

        async def do(who: str, verb: str, body: dict[str, Any] | None) -> Any:
            client = world.bank(ICBC) if who == "bank" else world.enterprise(uscc)  # noqa: B023
            async with client as c:
                return await c.post(f"/v1/applications/{aid}/{verb}", json=body)  # noqa: B023

        for step in PATHS[status]:
            assert (await do(*step)).status_code == 200
        before = await _count(world, "application_status_history")
        r = await do(*ACTIONS[action])
        if action in ALLOWED[status]:
            assert r.status_code == 200, (status, action, r.text)
        else:
            assert r.status_code == 409, (status, action, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            body = r.json()
            assert body["type"].endswith("/invalid-transition")
            assert body["current_status"] == status
            assert await _count(world, "application_status_history") == before


async def test_idempotency_replay_returns_the_first_answer(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    key = "apply-" + uuid.uuid4().hex
    first = await _apply(world, e["uscc"], key=key)
    again = await _apply(world, e["uscc"], key=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The same key with another body is refused; the key is the enterprise's own.
    other = await _apply(world, e["uscc"], key=key, amount=200_000)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await _count(world, "applications") == 1
    missing = await (world.enterprise(e["uscc"])).post(
        "/v1/applications", json={"product_id": P_ICBC, "amount": 1}
    )
    assert missing.status_code == 400


async def test_concurrent_duplicates_make_one_application(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    key = "burst-" + uuid.uuid4().hex
    async with world.enterprise(e["uscc"]) as c:
        responses = await asyncio.gather(
            *[
                c.post(
                    "/v1/applications",
                    json={"product_id": P_ICBC, "amount": 250_000},
                    headers={"Idempotency-Key": key},
                )
                for _ in range(40)
            ]
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count(world, "applications") == 1
    assert await _count(world, "outbox") == 1


async def test_one_open_application_per_product(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    first = await _apply(world, e["uscc"])
    second = await _apply(world, e["uscc"])
    assert second.status_code == 409
    assert second.json()["type"].endswith("/application-already-open")
    assert second.json()["application_id"] == first.json()["id"]
    # Another bank's product is a separate application.
    assert (await _apply(world, e["uscc"], product=SEEDED_PRODUCTS[HZUB])).status_code == 201
    async with world.enterprise(e["uscc"]) as c:
        await c.post(f"/v1/applications/{first.json()['id']}/withdraw")
    assert (await _apply(world, e["uscc"])).status_code == 201


async def test_bad_input_is_a_clear_problem_and_writes_nothing(world: CreditWorld) -> None:
    scores = await world.scores()
    ok = next(s for s in scores if s["scored"] and not s["exclusion"] and s["stage"] == "seed")
    excluded = next(s for s in scores if s["exclusion"])
    async with world.enterprise(ok["uscc"]) as c:
        line = (await c.get(f"/v1/enterprises/{ok['uscc']}/offers")).json()["items"][0]["amount"]
    # A product for later stages only.
    async with world.bank(HZUB) as bank:
        terms = {
            "name": "成长贷",
            "eligible_stages": ["growth", "expansion"],
            "line_rule": {"base_amount": 500_000},
            "max_amount": 5_000_000,
            "rate_min": 3.2,
            "rate_max": 4.0,
            "term_months": 12,
        }
        created = (await bank.post("/v1/products", json=terms)).json()
        draft_id = created["id"]
        r = await bank.post("/v1/products", json={**terms, "name": "later"})
        later = r.json()["id"]
        assert (await bank.post(f"/v1/products/{later}/publish")).status_code == 200
    async with world.bank(HZBANK) as bank:
        assert (
            await bank.post(f"/v1/products/{SEEDED_PRODUCTS[HZBANK]}/withdraw")
        ).status_code == 200
    from stdnum.cn import uscc as std

    stranger = "91330108000000077" + std.calc_check_digit("91330108000000077")
    cases = [
        (ok["uscc"], {"amount": line + 1}, 422, "amount-above-line"),
        (ok["uscc"], {"product_id": SEEDED_PRODUCTS[HZBANK]}, 409, "product-not-available"),
        (ok["uscc"], {"product_id": draft_id}, 409, "product-not-available"),
        (ok["uscc"], {"product_id": later}, 422, "stage-not-eligible"),
        (ok["uscc"], {"product_id": str(uuid.uuid4())}, 404, "not-found"),
        (ok["uscc"], {"term_months": 24}, 422, "term-above-product"),
        (ok["uscc"], {"amount": 0}, 422, "validation-error"),
        (ok["uscc"], {"amount": "lots"}, 422, "validation-error"),
        (ok["uscc"], {"surprise": 1}, 422, "validation-error"),
        (excluded["uscc"], {}, 422, "negative-list"),
        (stranger, {}, 422, "no-published-score"),
    ]
    for uscc, change, status, slug in cases:
        body = {"product_id": P_ICBC, "amount": 100_000, **change}
        async with world.enterprise(uscc) as c:
            r = await c.post(
                "/v1/applications", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
        assert r.status_code == status, (change, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/" + slug), (change, r.json())
    for table in (
        "applications",
        "idempotency_keys",
        "consents",
        "outbox",
        "application_status_history",
    ):
        assert await _count(world, table) == 0, table


async def test_decision_checks_the_product_terms(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    aid = (await _apply(world, e["uscc"])).json()["id"]
    async with world.bank(ICBC) as bank:
        for body, slug in [
            ({"decision": "approve", "amount": 100_000, "rate": 9.9}, "rate-outside-product-range"),
            (
                {"decision": "approve", "amount": 20_000_000, "rate": 3.0},
                "amount-above-product-maximum",
            ),
            ({"decision": "approve", "amount": 100_000}, "validation-error"),
            ({"decision": "reject"}, "validation-error"),
            ({"decision": "reject", "reason_codes": ["bad_mood"]}, "validation-error"),
            ({"decision": "maybe"}, "validation-error"),
        ]:
            r = await bank.post(f"/v1/applications/{aid}/decision", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["type"].endswith("/" + slug)
        r = await bank.post(
            f"/v1/applications/{aid}/decision",
            json={"decision": "reject", "reason_codes": ["adverse_credit_history", "other"]},
        )
        assert r.status_code == 200 and r.json()["reason_codes"] == [
            "adverse_credit_history",
            "other",
        ]
    assert await _count(world, "application_status_history") == 2


@pytest.mark.parametrize("amount", [None, 90_000, 100_001])
async def test_disburse_up_to_the_approved_amount(world: CreditWorld, amount: int | None) -> None:
    e = (await world.eligible())[0]
    aid = (await _apply(world, e["uscc"])).json()["id"]
    async with world.bank(ICBC) as bank:
        await bank.post(
            f"/v1/applications/{aid}/decision",
            json={"decision": "approve", "amount": 100_000, "rate": 3.0},
        )
        r = await bank.post(
            f"/v1/applications/{aid}/disburse", json={} if amount is None else {"amount": amount}
        )
    if amount == 100_001:
        assert r.status_code == 422
        assert r.json()["type"].endswith("/amount-above-approved")
    else:
        assert r.status_code == 200
        assert r.json()["disbursed_amount"] == (amount or 100_000)


async def test_application_keeps_its_product_version(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    aid = (await _apply(world, e["uscc"])).json()["id"]
    async with world.bank(ICBC) as bank:
        current = (await bank.get(f"/v1/products/{P_ICBC}")).json()
        terms = {
            k: current[k]
            for k in (
                "name",
                "eligible_stages",
                "line_rule",
                "max_amount",
                "term_months",
                "guarantee",
            )
        }
        terms.update(rate_min=4.0, rate_max=5.0)
        assert (await bank.put(f"/v1/products/{P_ICBC}", json=terms)).status_code == 200
        assert (await bank.post(f"/v1/products/{P_ICBC}/publish")).status_code == 200
        app = (await bank.get(f"/v1/applications/{aid}")).json()
        assert app["product_version"] == 1
        # Decided against version 1's range, not version 2's.
        r = await bank.post(
            f"/v1/applications/{aid}/decision",
            json={"decision": "approve", "amount": 100_000, "rate": 3.0},
        )
        assert r.status_code == 200, r.text
        v1 = (await bank.get(f"/v1/products/{P_ICBC}", params={"version": 1})).json()
        assert v1["rate_max"] == 3.85
