"""Rate limits per principal, with the `limits` library (async API).

In memory by default (one gateway process); with `GATEWAY_RATE_LIMIT_STORAGE=redis://...`
the counters are shared by every replica. The sliding-window counter strategy costs two
counters per key (memory and Redis round trips stay flat at any rate), unlike the moving
window which stores one entry per request.

If the storage fails (Redis away) requests are let through and the failure logged:
throttling is protection, not the product, and must not take the platform down with it.

In memory the counting is `MemoryWindows`: limits' sliding-window counter arithmetic, done
in place. limits' async memory storage spends seven coroutine layers, a lock per key and an
expiry task on two dictionary reads and an increment, and was a fifth of the gateway's own
work per proxied request (cProfile of the proxy path in-process, limits 5.8). The limits
themselves are still parsed by `limits`, and Redis is still counted by it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from shared.errors import TooManyRequests

log = structlog.get_logger("gateway.ratelimit")


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


@dataclass(frozen=True, slots=True)
class WindowStats:
    reset_time: float
    remaining: int


class MemoryWindows:
    """limits' sliding window counter (`SlidingWindowCounterRateLimiter` over
    `MemoryStorage`), synchronous: each key counts its hits in the current window of
    `expiry` seconds (windows aligned on multiples of it, as limits aligns them) and keeps
    the previous window's count, weighted by how much of it still overlaps the last
    `expiry` seconds. Stale keys are swept once the table has grown by `sweep_every`."""

    def __init__(self, sweep_every: int = 10_000) -> None:
        # (limit, window length, key) -> [window number, hits in the previous one, in this one]
        self._windows: dict[tuple[int, int, str], list[int]] = {}
        self._sweep_at = self._sweep_every = sweep_every

    def _counts(
        self, item: RateLimitItem, key: str, now: float
    ) -> tuple[list[int] | None, int, float, int, float, int]:
        """The key's entry (None if it has none), its weighted state and this window."""
        expiry = item.get_expiry()
        window = int(now // expiry)
        entry = self._windows.get((item.amount, expiry, key))
        previous = current = 0
        if entry is not None:
            if entry[0] == window:
                previous, current = entry[1], entry[2]
            elif entry[0] == window - 1:
                previous = entry[2]
        # As limits computes them: the previous window's share still in the sliding window,
        # and the time this window's count has left.
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return entry, previous, previous_ttl, current, current_ttl, window

    def hit(self, item: RateLimitItem, key: str) -> bool:
        """Count one hit if the limit has room for it (limits' `hit`)."""
        now = time.time()
        entry, previous, previous_ttl, current, _, window = self._counts(item, key, now)
        if math.floor(previous * previous_ttl / item.get_expiry() + current) + 1 > item.amount:
            return False
        if entry is None:
            self._windows[(item.amount, item.get_expiry(), key)] = [window, 0, 1]
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
        else:
            entry[0], entry[1], entry[2] = window, previous, current + 1
        return True

    def test(self, item: RateLimitItem, key: str) -> bool:
        """Whether one more hit would be allowed (limits' `test`)."""
        _, previous, previous_ttl, current, _, _ = self._counts(item, key, time.time())
        return previous * previous_ttl / item.get_expiry() + current < item.amount

    def window_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        """Reset time and room left (limits' `get_window_stats`)."""
        now = time.time()
        _, previous, previous_ttl, current, current_ttl, _ = self._counts(item, key, now)
        expiry = item.get_expiry()
        weighted = previous * previous_ttl / expiry + current
        remaining = max(0, item.amount - math.floor(weighted))
        if not (previous or current):
            return WindowStats(now, remaining)
        previous_reset_in = previous_ttl % (expiry / previous) if previous else math.inf
        current_reset_in = current_ttl % expiry if current else math.inf
        return WindowStats(now + min(previous_reset_in, current_reset_in), remaining)

    def _sweep(self, now: float) -> None:
        # An entry older than the previous window counts nothing any more.
        stale = [k for k, entry in self._windows.items() if entry[0] < int(now // k[1]) - 1]
        for k in stale:
            del self._windows[k]
        self._sweep_at = len(self._windows) + self._sweep_every


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
        self._parsed: dict[str, list[RateLimitItem]] = {}
        self.memory: MemoryWindows | None = None
        if storage_uri.split("://", 1)[0] == "memory":
            self.memory = MemoryWindows()
            return
        storage = storage_from_string(_async_uri(storage_uri), **options)
        assert isinstance(storage, Storage)
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    def _limits(self, spec: str) -> list[RateLimitItem]:
        items = self._parsed.get(spec)
        if items is None:
            items = self._parsed[spec] = parse_many(spec)
        return items

    async def exhausted(self, spec: str, key: str) -> int | None:
        """Seconds until `spec` has room for `key` again; None if it has room now. Counts
        nothing. A failing storage has room (see the module docstring)."""
        memory = self.memory
        if memory is not None:
            for item in self._limits(spec):
                if not memory.test(item, key):
                    return _retry_after(memory.window_stats(item, key).reset_time)
            return None
        for item in self._limits(spec):
            try:
                if await self.strategy.test(item, key):
                    continue
                stats = await self.strategy.get_window_stats(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed; letting through", error=repr(exc))
                return None
            return _retry_after(stats.reset_time)
        return None

    async def record(self, spec: str, key: str) -> None:
        """Count one event against every limit of `spec`, whatever room is left."""
        memory = self.memory
        if memory is not None:
            for item in self._limits(spec):
                memory.hit(item, key)
            return
        for item in self._limits(spec):
            try:
                await self.strategy.hit(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed", error=repr(exc))
                return

    async def check(self, spec: str, key: str) -> None:
        """Count one request against every limit of `spec`; 429 when one is exhausted."""
        memory = self.memory
        if memory is not None:
            for item in self._limits(spec):
                if not memory.hit(item, key):
                    _refuse(item, memory.window_stats(item, key).reset_time)
            return
        for item in self._limits(spec):
            try:
                allowed = await self.strategy.hit(item, key)
                if allowed:
                    continue
                stats = await self.strategy.get_window_stats(item, key)
            except Exception as exc:
                log.warning("rate limit storage failed; letting through", error=repr(exc))
                return
            _refuse(item, stats.reset_time)


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def _refuse(item: RateLimitItem, reset_time: float) -> None:
    retry_after = _retry_after(reset_time)
    raise TooManyRequests(
        f"Limit {item} exceeded; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
