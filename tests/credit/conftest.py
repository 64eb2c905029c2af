"""Credit test fixtures: the platform with scoring + credit, a published evaluation, banks.

The background loops are off (interval 0): tests call `sync_evaluations` and `deliver_outbox`
themselves, so nothing depends on timing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devtools.bank_simulator import create_bank_simulator
from services.credit.evaluations.sync import sync_evaluations
from services.credit.notifications.dispatcher import DeliveryReport, deliver_outbox
from shared.feed import FeedReport
from tests.platform import Platform
from tests.scoring_fixtures import publish_demo

DEMO_SIZE = 600
BANKS = ("icbc-binjiang", "hzub-binjiang", "hzbank-binjiang")
ICBC, HZUB, HZBANK = BANKS
SEEDED_PRODUCTS = {
    ICBC: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
    HZUB: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f02",
    HZBANK: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
}
# Standard Webhooks secrets (whsec_ + base64) of the simulated bank systems.
SECRETS = {
    ICBC: "whsec_aWNiYy1iaW5qaWFuZy13ZWJob29rLXNlY3JldC0wMQ==",
    HZUB: "whsec_aHp1Yi1iaW5qaWFuZy13ZWJob29rLXNlY3JldC0wMg==",
    HZBANK: "whsec_aHpiYW5rLWJpbmppYW5nLXdlYmhvb2stc2VjcmV0LTM=",
}


@dataclass
class CreditWorld:
    platform: Platform
    run_id: str

    @property
    def app(self) -> Any:
        return self.platform.fastapi["credit"]

    async def sync(self) -> FeedReport:
        return await sync_evaluations(self.app)

    async def deliver(self) -> DeliveryReport:
        return await deliver_outbox(self.app)

    async def submit(self, uscc: str, bank: str = ICBC, amount: int = 100_000) -> dict[str, Any]:
        """The enterprise applies for the bank's seeded product; the application's JSON."""
        async with self.enterprise(uscc) as c:
            r = await c.post(
                "/v1/applications",
                json={"product_id": SEEDED_PRODUCTS[bank], "amount": amount},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def enterprise(self, uscc: str) -> httpx.AsyncClient:
        return self.platform.client("credit", "enterprise", uscc=uscc)

    def bank(self, bank_id: str) -> httpx.AsyncClient:
        return self.platform.client("credit", "bank", bank_id=bank_id)

    def government(self) -> httpx.AsyncClient:
        return self.platform.client("credit", "government")

    async def scores(self) -> list[dict[str, Any]]:
        """The published scores as scoring serves them (to pick enterprises by property)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        async with self.platform.client("scoring", "government") as gov:
            while True:
                params: dict[str, Any] = {"limit": 5000}
                if after:
                    params["after"] = after
                page = (
                    await gov.get(f"/v1/evaluations/{self.run_id}/scores", params=params)
                ).json()
                out.extend(page["items"])
                after = page.get("next_after")
                if not after:
                    return out

    async def eligible(self, count: int = 1, **where: Any) -> list[dict[str, Any]]:
        picked = [
            s
            for s in await self.scores()
            if s["scored"] and not s["exclusion"] and all(s.get(k) == v for k, v in where.items())
        ]
        assert len(picked) >= count, f"demo data has fewer than {count} such enterprises"
        return picked[:count]


def webhook_targets(base: str = "http://bank-sim") -> dict[str, dict[str, str]]:
    return {b: {"url": f"{base}/webhooks/{b}", "secret": SECRETS[b]} for b in BANKS}


@pytest.fixture
async def world(platform: Platform) -> CreditWorld:
    """Scoring with a published demo evaluation of 200 firms; credit synced to it."""
    simulator = create_bank_simulator(SECRETS)
    platform.apps["bank-sim"] = simulator
    run_id = await publish_demo(platform, n=DEMO_SIZE)
    await platform.start(
        "credit", sync_interval=0, outbox_interval=0, bank_webhooks=webhook_targets()
    )
    w = CreditWorld(platform, run_id)
    report = await w.sync()
    assert report.imported == [run_id], report
    return w
