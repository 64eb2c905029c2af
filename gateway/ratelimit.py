"""Rate limits per principal, with the `limits` library (async API).

In memory by default (one gateway process); with `GATEWAY_RATE_LIMIT_STORAGE=redis://...`
the counters are shared by every replica. The sliding-window counter strategy costs two
counters per key (memory and Redis round trips stay flat at any rate), unlike the moving
window which stores one entry per request.

If the storage fails (Redis away) requests are let through and the failure logged:
throttling is protection, not the product, and must not take the platform down with it.
"""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from shared.errors import TooManyRequests

log = structlog.get_logger("gateway.ratelimit")


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    def __init__(self, storage_uri: str) -> None:
        options: dict[str, float | str] = {}
        if "redis" in storage_uri.split("://", 1)[0]:
            # redis-py (a dependency already) rather than limits' default coredis; and a
            # stalled Redis must cost a request a fraction of a second, not a hang.
            options = {
                "implementation": "redispy",
                "socket_timeout": 0.25,
                "socket_connect_timeout": 0.25,
            }
        storage = storage_from_string(_async_uri(storage_uri), **options)
        assert isinstance(storage, Storage)
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _limits(self, spec: str) -> list[RateLimitItem]:
        items = self._parsed.get(spec)
        if items is None:
            items = self._parsed[spec] = parse_many(spec)
        return items

    async def exhausted(self, spec: str, key: str) -> int | None:
        """Seconds until `spec` has room for `key` again; None if it has room now. Counts
        nothing. A failing storage has room (see the module docstring)."""
        for item in self._limits(spec):
            try:
                if await self.strategy.test(item, key):
                    continue
                stats = await self.strategy.get_window_stats(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed; letting through", error=repr(exc))
                return None
            return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def record(self, spec: str, key: str) -> None:
        """Count one event against every limit of `spec`, whatever room is left."""
        for item in self._limits(spec):
            try:
                await self.strategy.hit(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed", error=repr(exc))
                return

    async def check(self, spec: str, key: str) -> None:
        """Count one request against every limit of `spec`; 429 when one is exhausted."""
        for item in self._limits(spec):
            try:
                allowed = await self.strategy.hit(item, key)
                if allowed:
                    continue
                stats = await self.strategy.get_window_stats(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed; letting through", error=repr(exc))
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise TooManyRequests(
                f"Limit {item} exceeded; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
