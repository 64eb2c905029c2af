"""HTTP routers of the scoring service."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.scoring.api import enterprises
    from services.scoring.evaluations import router as evaluations
    from services.scoring.imports import router as imports
    from services.scoring.indicators import router as catalogue
    from services.scoring.specs import router as models

    return [
        catalogue.router,
        imports.router,
        models.router,
        evaluations.router,
        enterprises.router,
    ]
