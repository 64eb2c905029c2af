"""HTTP routers of the scoring service."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.scoring.api import catalogue, enterprises, evaluations
    from services.scoring.imports import router as imports
    from services.scoring.specs import router as models

    return [
        catalogue.router,
        imports.router,
        models.router,
        evaluations.router,
        enterprises.router,
    ]
