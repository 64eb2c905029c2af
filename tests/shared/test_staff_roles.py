"""Every service enforces a staff member's role on its own, and records the person.

Here the services are called directly with internal tokens, as if the gateway had been
passed by (a leaked token, a misrouted call): a viewer's token that even carries every write
scope changes nothing (403 `read-only-role`), while an operator's writes are recorded under
the person's name. The gateway's own refusal is tested in tests/gateway/test_staff_login.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from services.credit.evaluations.sync import sync_evaluations
from services.credit.products.schemas import ProductTerms
from services.policy.matching.sync import sync_evaluations as sync_policy
from shared.auth.principal import Principal, PrincipalKind
from tests.credit.conftest import SEEDED_PRODUCTS, CreditWorld, webhook_targets
from tests.platform import Platform
from tests.policy.test_policy_service import DRAFT
from tests.scoring_fixtures import publish_demo

GOV_WRITE = ["scoring:read", "scoring:admin", "credit:read", "policy:read", "policy:admin"]
BANK_WRITE = ["credit:read", "credit:decide", "scoring:read", "policy:read"]
ICBC = "icbc-binjiang"
OPERATOR_NAME = "陈思远"
OFFICER_NAME = "王建国"
FACTS = (
    b"uscc,name,period,operating_revenue\n"
    b"91330108MA27XK0A1M,\xe6\x9d\xad\xe5\xb7\x9e\xe7\x94\xb2,2025,1200\n"
)


def staff_client(
    platform: Platform,
    service: str,
    kind: PrincipalKind,
    role: str,
    name: str,
    scopes: list[str],
    bank_id: str | None = None,
) -> httpx.AsyncClient:
    principal = Principal(
        sub=f"staff:dev:{name}",
        kind=kind,
        bank_id=bank_id,
        role=role,  # type: ignore[arg-type]
        act=name,
        scopes=scopes,
    )
    token = platform.issuer.mint(principal, service)
    return httpx.AsyncClient(
        transport=platform.transport,
        base_url=f"http://{service}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def gov(platform: Platform, service: str, role: str) -> httpx.AsyncClient:
    return staff_client(platform, service, PrincipalKind.GOVERNMENT, role, OPERATOR_NAME, GOV_WRITE)


def officer(platform: Platform, role: str) -> httpx.AsyncClient:
    return staff_client(
        platform, "credit", PrincipalKind.BANK, role, OFFICER_NAME, BANK_WRITE, bank_id=ICBC
    )


def read_only(r: httpx.Response) -> bool:
    return r.status_code == 403 and r.json()["type"].endswith("/read-only-role")


async def test_scoring_refuses_a_viewer_and_records_the_operator(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=200)
    async with gov(platform, "scoring", "viewer") as viewer:
        assert (await viewer.get(f"/v1/evaluations/{run_id}")).status_code == 200
        r = await viewer.post("/v1/imports", files={"file": ("f.csv", FACTS, "text/csv")})
        assert read_only(r), r.text
        assert read_only(await viewer.post("/v1/evaluations", json={"period": 2025}))
        assert read_only(await viewer.post(f"/v1/evaluations/{run_id}/publish"))
        assert read_only(await viewer.post("/v1/models/2025.1/publish"))
    async with gov(platform, "scoring", "operator") as operator:
        r = await operator.post("/v1/imports", files={"file": ("f.csv", FACTS, "text/csv")})
        assert r.status_code == 201, r.text
        assert r.json()["created_by"] == OPERATOR_NAME
        r = await operator.post("/v1/evaluations", json={"period": 2025, "wait": True})
        assert r.status_code in (201, 202), r.text
        assert r.json()["created_by"] == OPERATOR_NAME
        # Publishing again what is published: not a role refusal, the service's own answer.
        r = await operator.post(f"/v1/evaluations/{run_id}/publish")
        assert not read_only(r)


async def test_policy_refuses_a_viewer_and_records_the_operator(platform: Platform) -> None:
    await publish_demo(platform, n=200)
    await platform.start("policy", sync_interval=0)
    await sync_policy(platform.fastapi["policy"])
    async with gov(platform, "policy", "viewer") as viewer:
        listed = await viewer.get("/v1/policies")
        assert listed.status_code == 200
        seeded = listed.json()["items"][0]["id"]
        assert read_only(await viewer.post("/v1/policies", json=DRAFT))
        assert read_only(await viewer.post(f"/v1/policies/{seeded}/publish"))
        assert read_only(await viewer.post(f"/v1/policies/{seeded}/archive"))
        content = {k: v for k, v in DRAFT.items() if k != "code"}
        assert read_only(await viewer.put(f"/v1/policies/{seeded}", json=content))
    async with gov(platform, "policy", "operator") as operator:
        r = await operator.post("/v1/policies", json=DRAFT)
        assert r.status_code == 201, r.text
        assert r.json()["created_by"] == OPERATOR_NAME
        r = await operator.post(f"/v1/policies/{r.json()['id']}/publish")
        assert r.status_code == 200, r.text


async def test_credit_refuses_a_viewer_and_records_the_officer(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=600)
    await platform.start(
        "credit", sync_interval=0, outbox_interval=0, bank_webhooks=webhook_targets()
    )
    world = CreditWorld(platform, run_id)
    await sync_evaluations(world.app)
    (pick,) = await world.eligible(1)
    application = await world.submit(pick["uscc"], ICBC)
    app_id = application["id"]
    product = SEEDED_PRODUCTS[ICBC]
    async with officer(platform, "viewer") as viewer:
        assert (await viewer.get(f"/v1/applications/{app_id}")).status_code == 200
        for path, body in (
            (f"/v1/applications/{app_id}/review", {}),
            (f"/v1/applications/{app_id}/decision", {"decision": "approve"}),
            (f"/v1/applications/{app_id}/disburse", {}),
            (f"/v1/products/{product}/withdraw", None),
        ):
            assert read_only(await viewer.post(path, json=body)), path
    async with officer(platform, "operator") as operator:
        r = await operator.post(f"/v1/applications/{app_id}/review", json={})
        assert r.status_code == 200, r.text
        r = await operator.post(
            f"/v1/applications/{app_id}/decision",
            json={"decision": "approve", "amount": 100_000, "rate": 3.0},
        )
        assert r.status_code == 200, r.text
        r = await operator.post(f"/v1/applications/{app_id}/disburse", json={})
        assert r.status_code == 200, r.text
        r = await operator.get(f"/v1/applications/{app_id}")
        history = r.json()["history"]
        by_bank = [(h["to_status"], h["actor"]) for h in history if h["actor_kind"] == "bank"]
        assert by_bank == [
            ("under_review", OFFICER_NAME),
            ("approved", OFFICER_NAME),
            ("disbursed", OFFICER_NAME),
        ], history
        terms = await operator.get(f"/v1/products/{product}")
        body = {k: v for k, v in terms.json().items() if k in ProductTerms.model_fields}
        r = await operator.post("/v1/products", json={**body, "name": f"新产品 {uuid.uuid4()}"})
        assert r.status_code == 201, r.text
        created = r.json()["id"]
    async with world.app.state.sessionmaker() as session:
        rows: list[Any] = list(
            await session.execute(
                text("SELECT created_by FROM credit.products WHERE id = :id"), {"id": created}
            )
        )
    assert rows == [(OFFICER_NAME,)]
