"""Asking credit and policy what a run would change, through their own what-if APIs.

Each answer is a part with its own status, as the gateway's dashboard reports its parts: a
service that is down, slow or refuses leaves the rest of the comparison intact, never a 500.
Written on the shared HTTP client rather than `ServiceClient`, whose failures are one 502
problem: a part needs the status and the problem the service gave.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog
from fastapi import FastAPI

from services.scoring.comparisons.schemas import DownstreamPart
from services.scoring.settings import ScoringSettings
from shared.errors import ProblemError

log = structlog.get_logger("scoring.comparisons")

WHAT_IF_PATH = "/v1/what-if/evaluation"


async def what_if(app: FastAPI, service: str, body: dict[str, Any]) -> DownstreamPart:
    settings: ScoringSettings = app.state.settings
    base = settings.credit_url if service == "credit" else settings.policy_url
    tokens = app.state.token_source
    if tokens is None:
        return DownstreamPart(
            status="unavailable", problem={"detail": f"No token source for calling {service}"}
        )
    timeout = settings.whatif_timeout
    try:
        async with asyncio.timeout(timeout):
            token = await tokens.token(service)
            resp = await app.state.http.post(
                base.rstrip("/") + WHAT_IF_PATH,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
            )
    except (TimeoutError, httpx.TimeoutException):
        return DownstreamPart(status="timeout", problem={"detail": f"{service}: no answer"})
    except (httpx.HTTPError, ProblemError) as exc:
        log.warning("what-if unavailable", service=service, error=repr(exc)[:200])
        return DownstreamPart(
            status="unavailable", problem={"detail": f"{service}: {type(exc).__name__}"}
        )
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if resp.status_code == 200 and isinstance(payload, dict):
        return DownstreamPart(status="ok", http_status=200, data=payload)
    problem = payload if isinstance(payload, dict) else {"detail": resp.text[:500]}
    status = "unavailable" if resp.status_code in (502, 503, 504) else "error"
    return DownstreamPart(status=status, http_status=resp.status_code, problem=problem)
