"""The background consumers: following scoring's feed, delivering the outbox.

Each is a loop around a step that tests call directly (`sync_evaluations`,
`deliver_outbox`); an interval of 0 leaves the loop off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI

from services.credit.evaluations.sync import sync_evaluations
from services.credit.notifications.dispatcher import deliver_outbox
from services.credit.settings import CreditSettings
from shared.app import start_background

log = structlog.get_logger("credit.background")


async def _every(
    app: FastAPI, step: Callable[[FastAPI], Awaitable[object]], interval: float, name: str
) -> None:
    while True:
        try:
            await step(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An unreachable scoring service or bank must not stop the loop: the cursor and
            # the outbox keep the work until the next round.
            log.warning("background step failed", job=name, error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)


async def start_consumers(app: FastAPI) -> None:
    settings: CreditSettings = app.state.settings
    if settings.sync_interval > 0:
        start_background(
            app, _every(app, sync_evaluations, settings.sync_interval, "sync"), "credit-sync"
        )
    if settings.outbox_interval > 0:
        start_background(
            app, _every(app, deliver_outbox, settings.outbox_interval, "outbox"), "credit-outbox"
        )
