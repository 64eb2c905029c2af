from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.policy.enterprises.router import router as enterprises
    from services.policy.policies.router import router as policies
    from services.policy.pools.router import router as pools
    from services.policy.whatif.router import router as whatif

    return [pools, policies, enterprises, whatif]
