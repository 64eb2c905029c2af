"""The scoring service: indicators, stages, models, evaluations, scores, portraits, rankings."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.scoring.settings import ScoringSettings
from shared.app import Overrides, ServiceSpec, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "scoring"


async def _startup(app: FastAPI) -> None:
    from services.scoring.evaluations.service import fail_stale_runs, now_utc
    from services.scoring.scores.detail import open_reader
    from services.scoring.scores.service import RunCache
    from services.scoring.specs.service import SpecCache, seed_default_spec

    app.state.specs = SpecCache()
    app.state.runs = RunCache()
    if getattr(app.state, "clock", None) is None:  # tests hand in a clock they can move
        app.state.clock = now_utc
    async with app.state.sessionmaker() as session, session.begin():
        await seed_default_spec(session)
    await fail_stale_runs(app.state.engine)
    await open_reader(app)


async def _shutdown(app: FastAPI) -> None:
    from services.scoring.scores.detail import close_reader

    await close_reader(app)


def create_app(
    settings: ScoringSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    from services.scoring.routers import routers
    from services.scoring.scores.hot import HOT_ROUTES

    spec = ServiceSpec(
        on_startup=[_startup],
        on_shutdown=[_shutdown],
        name="scoring",
        title="Innovation points: scoring service",
        description=(
            "Scores technology enterprises on 24 innovation indicators against peers of the "
            "same growth stage (企业创新积分)."
        ),
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        routers=routers(),
        hot_routes=HOT_ROUTES,
    )
    return create_service_app(spec, settings or ScoringSettings(), overrides)
