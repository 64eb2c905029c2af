"""Startup: seed, bring matches in line with the seeded rules, follow scoring's feed.

The feed loop is a thin wrapper around `sync_evaluations`, which tests call directly; an
interval of 0 leaves the loop off.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI

from services.policy.matching.service import recompute
from services.policy.matching.sync import sync_evaluations
from services.policy.seed import seed
from services.policy.settings import PolicySettings
from shared.app import start_background

log = structlog.get_logger("policy.background")


async def _follow_feed(app: FastAPI, interval: float) -> None:
    while True:
        try:
            await sync_evaluations(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An unreachable scoring service must not stop the loop: the cursor keeps the
            # work until the next round.
            log.warning("feed sync failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)


async def startup(app: FastAPI) -> None:
    settings: PolicySettings = app.state.settings
    async with app.state.sessionmaker() as session, session.begin():
        changed = await seed(session)
        if changed:
            # Rows of rules that changed in code (or were just seeded) follow them now,
            # not at the next evaluation.
            await recompute(session, changed, near_max=settings.near_max)
    if settings.sync_interval > 0:
        start_background(app, _follow_feed(app, settings.sync_interval), "policy-sync")
