"""HTTP routers of the credit service."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.credit.applications.router import router as applications
    from services.credit.banks.router import router as banks
    from services.credit.consents.router import router as consents
    from services.credit.lines.router import router as lines
    from services.credit.notifications.router import router as notifications
    from services.credit.outcomes.router import router as outcomes
    from services.credit.products.router import router as products
    from services.credit.stats.router import router as stats
    from services.credit.whatif.router import router as whatif

    return [banks, products, lines, applications, consents, notifications, stats, whatif, outcomes]
