"""The policy service: cultivation pools, policies, matching with gap reports, push (政策一键配)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.policy.settings import PolicySettings
from shared.app import Overrides, ServiceSpec, create_service_app
from shared.connections import close_read_connections, open_read_connections

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "policy"


def create_app(
    settings: PolicySettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    from services.policy.background import startup
    from services.policy.enterprises.hot import HOT_ROUTES
    from services.policy.routers import routers

    spec = ServiceSpec(
        name="policy",
        title="Innovation points: policy service",
        description=(
            "Cultivation pools (培育库) and policies (政策) with their criteria as data; every "
            "enterprise of the published evaluation matched against them, each answer with "
            "the criterion that failed and by how much; pushes of new matches (政策一键配)."
        ),
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        routers=routers(),
        on_startup=[open_read_connections, startup],
        on_shutdown=[close_read_connections],
        hot_routes=HOT_ROUTES,
    )
    return create_service_app(spec, settings or PolicySettings(), overrides)
