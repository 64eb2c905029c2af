"""The background consumers: following scoring's feed, delivering the outbox.

Each repeats a step that tests call directly (`sync_evaluations`, `deliver_outbox`); an
interval of 0 leaves the loop off.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.credit.evaluations.sync import sync_evaluations
from services.credit.notifications.dispatcher import deliver_outbox
from services.credit.settings import CreditSettings
from shared.background import start_every


async def start_consumers(app: FastAPI) -> None:
    settings: CreditSettings = app.state.settings
    start_every(app, "credit-sync", sync_evaluations, settings.sync_interval)
    start_every(app, "credit-outbox", deliver_outbox, settings.outbox_interval)
