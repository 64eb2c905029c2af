"""A bounded background load through the gateway, recording every answer with its timing so
a test can ask what happened before, during and after a fault."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Call:
    name: str  # what the test groups by, e.g. "credit:offers"
    path: str
    token: str
    method: str = "GET"
    json: Any = None


@dataclass(frozen=True)
class Sample:
    name: str
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no HTTP answer at all (a reset or a timeout)
    content_type: str
    body: Any


@dataclass
class Load:
    base_url: str
    calls: list[Call]
    concurrency: int = 6
    timeout: float = 8.0  # longer than any fault should ever make a caller wait
    max_requests: int = 4000
    max_seconds: float = 90.0
    samples: list[Sample] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _started: float = 0.0

    async def _worker(self, client: httpx.AsyncClient, calls: itertools.cycle[Call]) -> None:
        while not self._stop.is_set():
            if len(self.samples) >= self.max_requests:
                return
            if time.monotonic() - self._started > self.max_seconds:
                return
            call = next(calls)
            started = time.monotonic()
            try:
                r = await client.request(
                    call.method,
                    call.path,
                    json=call.json,
                    headers={"Authorization": f"Bearer {call.token}"},
                )
                status, ctype = r.status_code, r.headers.get("content-type", "")
                body: Any = r.json() if ctype.endswith("json") else r.text[:200]
            except httpx.HTTPError as exc:
                status, ctype, body = 0, "", repr(exc)
            self.samples.append(
                Sample(call.name, started, time.monotonic() - started, status, ctype, body)
            )
            # Yields to the test's own requests on a 2-core machine.
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Load:
        self._started = time.monotonic()
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        for i in range(self.concurrency):
            # Each worker starts at a different call so the mix runs from the first second.
            calls = itertools.cycle(
                self.calls[i % len(self.calls) :] + self.calls[: i % len(self.calls)]
            )
            self._tasks.append(asyncio.create_task(self._worker(self._client, calls)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    def between(self, start: float, end: float, prefix: str = "") -> list[Sample]:
        return [
            s
            for s in self.samples
            if start <= s.started and s.started + s.seconds <= end and s.name.startswith(prefix)
        ]


def summary(samples: list[Sample]) -> str:
    by: dict[tuple[str, int], int] = {}
    for s in samples:
        by[(s.name, s.status)] = by.get((s.name, s.status), 0) + 1
    return ", ".join(f"{n}={st}x{c}" for (n, st), c in sorted(by.items()))
