"""Calling the services: timeouts, retries for idempotent requests, a breaker per upstream.

Every failure becomes a problem quickly: 503 when the service is unreachable or its breaker
is open, 504 when it does not answer in time, 502 when it answers with garbage. A service's
own answers (its 4xx and 5xx problems included) come back unchanged; its 5xx count as
failures for its breaker.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from gateway.settings import UPSTREAMS, GatewaySettings
from shared.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from shared.metrics import CIRCUIT_STATE

log = structlog.get_logger("gateway.upstreams")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _UpstreamFailed(Exception):
    """Raised inside the breaker so it counts a failure; carries what to answer."""

    def __init__(self, response: httpx.Response | None, problem: Exception | None) -> None:
        self.response = response
        self.problem = problem


_STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}


def _export_state(name: str, event_name: str, event: Any) -> None:
    """Purgatory tells every state change; Prometheus gets it as a number per upstream."""
    if event_name == "state_changed":
        state = str(getattr(event, "state", "closed"))
        CIRCUIT_STATE.labels("gateway", name).set(_STATE_VALUES.get(state, 0))


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str
    timeout: httpx.Timeout


class Upstreams:
    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
        self.client = client
        self.retries = settings.upstream_retries
        self.breaker_ttl = settings.breaker_ttl
        self.by_name = {
            name: Upstream(
                name,
                settings.upstream_url(name),
                # Waiting for a free pooled connection is load, not a dead upstream: it may
                # take as long as a read, while a connect attempt gets the short bound.
                httpx.Timeout(
                    settings.read_timeout(name),
                    connect=settings.upstream_connect_timeout,
                    pool=settings.read_timeout(name),
                ),
            )
            for name in UPSTREAMS
        }
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.breaker_threshold, default_ttl=settings.breaker_ttl
        )
        self.breakers.add_listener(_export_state)
        for name in UPSTREAMS:
            CIRCUIT_STATE.labels("gateway", name).set(0)

    async def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: dict[str, str],
        content: bytes = b"",
        deadline: httpx.Timeout | None = None,
    ) -> httpx.Response:
        upstream = self.by_name[name]
        url = upstream.base_url + path + ("?" + query.decode("latin-1") if query else "")
        try:
            breaker = await self.breakers.get_breaker(name)
            async with breaker:
                return await self._send(upstream, method, url, headers, content, deadline)
        except OpenedState as exc:
            retry = max(1, math.ceil(exc.opened_at + self.breaker_ttl - time.time()))
            raise ServiceUnavailable(
                f"The {name} service is failing; calls are paused",
                headers={"Retry-After": str(retry)},
                upstream=name,
            ) from None
        except _UpstreamFailed as failed:
            if failed.response is not None:
                return failed.response
            raise failed.problem or UpstreamError(upstream=name) from None

    async def _send(
        self,
        upstream: Upstream,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes,
        deadline: httpx.Timeout | None,
    ) -> httpx.Response:
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        name = upstream.name
        for attempt in range(attempts):
            timeout = deadline or upstream.timeout
            # An overall bound too: whatever the transport does with httpx's timeouts, a call
            # never outlives connect + read.
            bound = (timeout.pool or 0) + (timeout.connect or 0) + (timeout.read or 0)
            try:
                async with asyncio.timeout(bound or None):
                    resp = await self.client.request(
                        method, url, headers=headers, content=content or None, timeout=timeout
                    )
            except (httpx.TimeoutException, TimeoutError) as exc:
                # Not retried: a retry would double the wait the caller already had.
                log.warning("upstream timeout", upstream=name, error=type(exc).__name__)
                problem: Exception = UpstreamTimeout(
                    f"The {name} service did not answer in time", upstream=name
                )
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    problem = ServiceUnavailable(
                        f"The {name} service is unreachable", upstream=name
                    )
                raise _UpstreamFailed(None, problem) from exc
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # Safe to repeat: the method is idempotent (a dead keep-alive connection or a
                # restarting replica).
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.02 + random.random() * 0.03)
                    continue
                log.warning("upstream unreachable", upstream=name, error=type(exc).__name__)
                cls = ServiceUnavailable if isinstance(exc, httpx.ConnectError) else UpstreamError
                raise _UpstreamFailed(
                    None, cls(f"The {name} service is unreachable", upstream=name)
                ) from exc
            except httpx.HTTPError as exc:
                log.warning("upstream error", upstream=name, error=type(exc).__name__)
                raise _UpstreamFailed(
                    None, UpstreamError(f"The {name} service failed", upstream=name)
                ) from exc
            if resp.status_code >= 500:
                raise _UpstreamFailed(resp, None)
            return resp
        raise AssertionError("unreachable")
