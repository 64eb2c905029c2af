"""HTTP routers of the scoring service."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.scoring.audit.router import router as audit
    from services.scoring.challengers.router import router as challengers
    from services.scoring.comparisons.router import router as comparisons
    from services.scoring.evaluations.router import router as evaluations
    from services.scoring.imports.router import router as imports
    from services.scoring.indicators.router import router as indicators
    from services.scoring.objections.router import router as objections
    from services.scoring.provenance.router import router as provenance
    from services.scoring.scores.router import router as scores
    from services.scoring.specs.router import router as specs
    from services.scoring.statistics.router import router as statistics
    from services.scoring.validations.router import router as validations

    return [
        indicators,
        imports,
        specs,
        evaluations,
        comparisons,
        scores,
        statistics,
        provenance,
        objections,
        audit,
        validations,
        challengers,
    ]
