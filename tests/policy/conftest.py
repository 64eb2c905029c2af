"""Policy test fixtures: the platform with scoring + policy and a published evaluation.

The feed loop is off (interval 0): tests call `sync_evaluations` themselves, so nothing
depends on timing. `bare_policy` starts the policy service alone, for tests that give it a
crafted population through the same `store_evaluation` + `recompute` path the sync uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.policy.matching.service import RecomputeReport, recompute
from services.policy.matching.sync import SyncReport, store_evaluation, sync_evaluations
from tests.platform import Platform
from tests.scoring_fixtures import demo, publish_demo

DEMO_SIZE = 300
DEMO_SEED = 11


@dataclass
class PolicyWorld:
    platform: Platform
    run_id: str | None = None

    @property
    def app(self) -> Any:
        return self.platform.fastapi["policy"]

    async def sync(self) -> SyncReport:
        return await sync_evaluations(self.app)

    def government(self) -> httpx.AsyncClient:
        return self.platform.client("policy", "government")

    def service(self) -> httpx.AsyncClient:
        return self.platform.client("policy", "service")

    def enterprise(self, uscc: str) -> httpx.AsyncClient:
        return self.platform.client("policy", "enterprise", uscc=uscc)

    def bank(self) -> httpx.AsyncClient:
        return self.platform.client("policy", "bank", bank_id="icbc-binjiang")

    async def load(
        self, items: list[Mapping[str, Any]], *, period: int = 2025, event_id: int = 1
    ) -> RecomputeReport:
        """Give the service a population in scoring's bulk shape, as a sync would."""
        async with self.app.state.sessionmaker() as session, session.begin():
            await store_evaluation(session, uuid.uuid4(), period, "test", event_id, items=items)
            return await recompute(session)


def usccs(k: int) -> list[str]:
    """Valid codes (GB 32100-2015 check digits) for crafted enterprises."""
    return [str(u) for u in demo(max(k, 10), 99).uscc[:k]]


def item(uscc: str, facts: Mapping[str, Any], **score: Any) -> dict[str, Any]:
    """One enterprise in scoring's `/scores?include=facts` shape."""
    return {
        "uscc": uscc,
        "name": f"企业{uscc[-4:]}",
        "stage": score.get("stage"),
        "total": score.get("total"),
        "tier": score.get("tier"),
        "percentile": score.get("percentile"),
        "facts": dict(facts),
    }


@pytest.fixture
async def world(platform: Platform) -> PolicyWorld:
    run_id = await publish_demo(platform, n=DEMO_SIZE, seed=DEMO_SEED, period=2025)
    await platform.start("policy", sync_interval=0)
    w = PolicyWorld(platform, run_id)
    report = await w.sync()
    assert report.imported == [run_id], report
    return w


@pytest.fixture
async def bare_policy(platform: Platform) -> PolicyWorld:
    await platform.start("policy", sync_interval=0)
    return PolicyWorld(platform)
