"""The credit service: the financial supermarket (金融超市) of innovation-points loans."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.credit.settings import CreditSettings
from shared.app import Overrides, ServiceSpec, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "credit"


def create_app(
    settings: CreditSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    from services.credit.applications.hot import HOT_ROUTES as APPLICATION_ROUTES
    from services.credit.background import start_consumers
    from services.credit.lines.hot import HOT_ROUTES as LINE_ROUTES
    from services.credit.reads import close_hot_reads, open_hot_reads
    from services.credit.routers import routers
    from services.credit.stats.hot import HOT_ROUTES as STATS_ROUTES

    spec = ServiceSpec(
        name="credit",
        title="Innovation points: credit service",
        description=(
            "Banks' innovation-points credit products, pre-approved lines from the published "
            "evaluation, online applications and their lifecycle, notifications to bank "
            "systems, and government statistics (金融超市)."
        ),
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        routers=routers(),
        on_startup=[open_hot_reads, start_consumers],
        on_shutdown=[close_hot_reads],
        hot_routes=[*LINE_ROUTES, *APPLICATION_ROUTES, *STATS_ROUTES],
    )
    return create_service_app(spec, settings or CreditSettings(), overrides)
