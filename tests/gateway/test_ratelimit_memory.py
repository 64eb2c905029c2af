"""The in-memory rate limiter counts as limits' own sliding-window counter does: the same
hits allowed and refused, the same room and reset time, for the same sequence of hits."""

from __future__ import annotations

import asyncio
import time

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from gateway.ratelimit import MemoryWindows, RateLimiter
from shared.errors import TooManyRequests


def _early_in_a_second() -> None:
    # A sequence must not straddle a window's edge between the two counters' calls.
    while time.time() % 1 > 0.5:
        time.sleep(0.05)


@pytest.mark.parametrize("spec", ["5/second", "3/minute", "4 per 2 seconds", "2/hour"])
async def test_the_counts_are_limits_own(spec: str) -> None:
    item = parse(spec)
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    ours = MemoryWindows()
    _early_in_a_second()
    for i in range(item.amount + 3):
        key = f"k{i % 2}"  # two keys, interleaved
        assert ours.test(item, key) == await theirs.test(item, key)
        assert ours.hit(item, key) == await theirs.hit(item, key)
        stats, expected = ours.window_stats(item, key), await theirs.get_window_stats(item, key)
        assert stats.remaining == expected.remaining
        assert stats.reset_time == pytest.approx(expected.reset_time, abs=0.05)


async def test_the_previous_window_still_weighs() -> None:
    item = parse("4/second")
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    ours = MemoryWindows()
    _early_in_a_second()
    for _ in range(4):
        assert ours.hit(item, "k") and await theirs.hit(item, "k")
    # Into the next second: most of the previous one's four hits still count.
    await asyncio.sleep(1 - time.time() % 1 + 0.1)
    assert ours.hit(item, "k") == await theirs.hit(item, "k")
    assert (
        ours.window_stats(item, "k").remaining
        == (await theirs.get_window_stats(item, "k")).remaining
    )


async def test_stale_keys_are_swept() -> None:
    ours = MemoryWindows(sweep_every=10)
    item = parse("1/second")
    for i in range(9):
        ours.hit(item, f"k{i}")
    await asyncio.sleep(2.1)
    ours.hit(item, "last")
    assert len(ours._windows) == 1


async def test_the_limiter_refuses_with_retry_after() -> None:
    limiter = RateLimiter("memory://")
    _early_in_a_second()
    await limiter.check("2/minute", "k")
    await limiter.check("2/minute", "k")
    with pytest.raises(TooManyRequests) as refused:
        await limiter.check("2/minute", "k")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 120
    assert await limiter.exhausted("2/minute", "k") is not None
    assert await limiter.exhausted("2/minute", "other") is None
