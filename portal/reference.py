"""Reference data every page needs and nobody's session changes: the indicator catalogue,
the banks, a published period's cohort statistics. Kept for a few minutes, so a page costs
the gateway only the calls that are about the person."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from portal.gateway import GatewayClient
from portal.sessions import Session


class ReferenceCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one fetch for a crowd arriving at once
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            value = await load()
            if len(self._values) > 256:  # periods x stages stays small; bound it anyway
                self._values.clear()
            self._values[key] = (time.monotonic(), value)
            return value

    async def indicators(self, gw: GatewayClient, session: Session) -> dict[str, dict[str, Any]]:
        async def load() -> dict[str, dict[str, Any]]:
            body = await gw.get(session, "/v1/scoring/indicators")
            return {i["code"]: i for i in body["items"]}

        result: dict[str, dict[str, Any]] = await self.get("indicators", load)
        return result

    async def banks(self, gw: GatewayClient, session: Session) -> dict[str, dict[str, Any]]:
        async def load() -> dict[str, dict[str, Any]]:
            body = await gw.get(session, "/v1/credit/banks")
            return {b["id"]: b for b in body["items"]}

        result: dict[str, dict[str, Any]] = await self.get("banks", load)
        return result

    async def cohort_stats(
        self, gw: GatewayClient, session: Session, stage: str, period: int
    ) -> dict[str, Any]:
        async def load() -> dict[str, Any]:
            body: dict[str, Any] = await gw.get(
                session, f"/v1/scoring/cohorts/{stage}/stats", {"period": period}
            )
            return body

        result: dict[str, Any] = await self.get(f"cohort:{stage}:{period}", load)
        return result
