"""The scoring service: indicators, stages, models, evaluations, scores, portraits, rankings."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.scoring.settings import ScoringSettings
from shared.app import Overrides, ServiceSpec, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "scoring"


def create_app(
    settings: ScoringSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    from services.scoring.api import routers

    spec = ServiceSpec(
        name="scoring",
        title="Innovation points: scoring service",
        description=(
            "Scores technology enterprises on 24 innovation indicators against peers of the "
            "same growth stage (企业创新积分)."
        ),
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        routers=routers(),
    )
    return create_service_app(spec, settings or ScoringSettings(), overrides)
