"""Startup: seed, bring matches in line with the seeded rules, follow scoring's feed.

The feed loop repeats `sync_evaluations`, which tests call directly; an interval of 0 leaves
the loop off.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.policy.matching.service import recompute, stale_rules
from services.policy.matching.sync import sync_evaluations
from services.policy.seed import seed
from services.policy.settings import PolicySettings
from shared.background import start_every


async def startup(app: FastAPI) -> None:
    settings: PolicySettings = app.state.settings
    async with app.state.sessionmaker() as session, session.begin():
        changed = await seed(session)
        # Rows of rules that changed in code (or were just seeded), or that have none for
        # the current evaluation, follow them now, not at the next evaluation.
        changed |= set(await stale_rules(session))
        if changed:
            await recompute(session, changed, near_max=settings.near_max)
    start_every(app, "policy-sync", sync_evaluations, settings.sync_interval)
