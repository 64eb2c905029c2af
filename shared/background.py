"""Work a service repeats every N seconds: following a feed, delivering an outbox.

The step is a plain coroutine function of the app, which tests call directly; the loop only
repeats it. An interval of 0 leaves the loop off (tests, or a replica that should only serve).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI

from shared.app import start_background

log = structlog.get_logger("background")

Step = Callable[[FastAPI], Awaitable[object]]


async def every(app: FastAPI, step: Step, interval: float, name: str) -> None:
    """Run `step` now and then `interval` seconds after each run ends, until cancelled."""
    while True:
        try:
            await step(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An unreachable upstream or bank must not stop the loop: the step's own state (a
            # cursor, an outbox) keeps the work until the next round.
            log.warning("background step failed", job=name, error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)


def start_every(app: FastAPI, name: str, step: Step, interval: float) -> None:
    """Repeat `step` as a background task of the app (cancelled at shutdown); 0 is off."""
    if interval > 0:
        start_background(app, every(app, step, interval, name), name)
