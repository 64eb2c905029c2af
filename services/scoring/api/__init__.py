"""HTTP routers of the scoring service."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from services.scoring.api import catalogue

    return [catalogue.router]
