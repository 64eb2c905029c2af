"""What the bank pages of the portal read and record: the consents in force to a bank (with
the enterprise's name), and who published and withdrew a product."""

from __future__ import annotations

import uuid
from typing import Any

from services.credit.evaluations.sync import sync_evaluations
from services.credit.products.schemas import ProductTerms
from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld, webhook_targets
from tests.platform import Platform
from tests.scoring_fixtures import publish_demo
from tests.shared.test_staff_roles import OFFICER_NAME, officer, read_only


async def _world(platform: Platform) -> CreditWorld:
    run_id = await publish_demo(platform, n=600)
    await platform.start(
        "credit", sync_interval=0, outbox_interval=0, bank_webhooks=webhook_targets()
    )
    world = CreditWorld(platform, run_id)
    await sync_evaluations(world.app)
    return world


async def test_a_bank_lists_the_consents_in_force_to_it_only(platform: Platform) -> None:
    world = await _world(platform)
    a, b = await world.eligible(2)
    async with world.enterprise(a["uscc"]) as c:
        assert (await c.post("/v1/consents", json={"bank_id": HZBANK})).status_code == 201
    await world.submit(b["uscc"], HZBANK)
    async with world.bank(HZBANK) as bank:
        r = await bank.get("/v1/consents")
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert {(i["uscc"], i["basis"]) for i in items} == {
            (a["uscc"], "explicit"),
            (b["uscc"], "application"),
        }
        names = {i["uscc"]: i["enterprise_name"] for i in items}
        assert names[a["uscc"]] == a["name"] and names[b["uscc"]] == b["name"]
        assert all(i["bank_id"] == HZBANK and i["status"] == "in_force" for i in items)
        # Ended consents are the enterprise's business.
        assert (await bank.get("/v1/consents?include_ended=true")).status_code == 403
    async with world.bank(HZUB) as other:
        assert (await other.get("/v1/consents")).json()["items"] == []
    async with world.government() as gov:
        assert (await gov.get("/v1/consents")).status_code == 403
    async with world.enterprise(a["uscc"]) as c:
        assert (await c.delete(f"/v1/consents/{HZBANK}")).status_code == 204
    async with world.bank(HZBANK) as bank:
        items = (await bank.get("/v1/consents")).json()["items"]
        assert [i["uscc"] for i in items] == [b["uscc"]]


async def test_publish_and_withdraw_record_the_person(platform: Platform) -> None:
    world = await _world(platform)
    async with officer(platform, "operator") as operator:
        terms = (await operator.get(f"/v1/products/{SEEDED_PRODUCTS[ICBC]}")).json()
        body: dict[str, Any] = {k: v for k, v in terms.items() if k in ProductTerms.model_fields}
        r = await operator.post("/v1/products", json={**body, "name": f"新产品 {uuid.uuid4()}"})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert r.json()["created_by"] == OFFICER_NAME
        assert r.json()["version_published_by"] is None
    async with officer(platform, "viewer") as viewer:
        assert read_only(await viewer.post(f"/v1/products/{pid}/publish"))
    async with officer(platform, "operator") as operator:
        r = await operator.post(f"/v1/products/{pid}/publish")
        assert r.status_code == 200, r.text
        assert r.json()["version_published_by"] == OFFICER_NAME
        assert r.json()["withdrawn_by"] is None
        r = await operator.post(f"/v1/products/{pid}/withdraw")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["withdrawn_by"]) == ("withdrawn", OFFICER_NAME)
        assert r.json()["withdrawn_at"] is not None
    async with world.bank(ICBC) as bank:
        shown = (await bank.get(f"/v1/products/{pid}")).json()
        assert shown["version_published_by"] == shown["withdrawn_by"] == OFFICER_NAME
