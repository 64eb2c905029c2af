"""Calling the services: timeouts, retries for idempotent requests, a breaker per upstream.

Every failure becomes a problem quickly: 503 when the service is unreachable or its breaker
is open, 504 when it does not answer in time, 502 when it answers with garbage. A service's
own answers, its 4xx and 5xx problems included, come back unchanged.

**What the breaker counts.** It exists to shed load from an upstream that cannot take it:
one that is unreachable or overloaded shows that as a transport error, a timeout, or its own
502/503/504 (a service answers 503 when its database is away). Only those count. Nothing
else does, because anything else could be a lever for one caller to switch a service off
for everyone (issue 10: five requests with one Latin-1 byte in a header opened it, since
the header's encoding error was raised inside the breaker):
* the caller's mistakes: the request is built, headers and URL included, before the
  breaker is entered, and a request that cannot be built is the caller's 400;
* exceptions of our own making inside the call (`httpx.LocalProtocolError` and the like)
  are re-raised after the breaker has been left, as a 500 for that request alone;
* a service's own 500. It means the service is up and answered; a caller can often provoke
  one (a bug in one route, one bad record), and counting it would let that caller take the
  whole service offline. A 500 is passed back, logged by the service with the request id,
  and counts as an answer like any other.
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
from shared.errors import BadRequest, ServiceUnavailable, UpstreamError, UpstreamTimeout
from shared.metrics import CIRCUIT_STATE

log = structlog.get_logger("gateway.upstreams")

# The proxy forwards raw header bytes; the dashboard builds its few headers as text.
Headers = list[tuple[bytes, bytes]] | dict[str, str]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


# What only an unavailable or overloaded upstream answers: these count for its breaker.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


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


def _overall_bound(timeout: httpx.Timeout) -> float:
    """Whatever the transport does with httpx's timeouts, a call never outlives their sum."""
    return (timeout.pool or 0) + (timeout.connect or 0) + (timeout.read or 0)


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
        headers: Headers,
        content: bytes = b"",
        deadline: httpx.Timeout | None = None,
    ) -> httpx.Response:
        upstream = self.by_name[name]
        url = upstream.base_url + path + ("?" + query.decode("latin-1") if query else "")
        timeout = deadline or upstream.timeout
        try:
            request = self.client.build_request(
                method, url, headers=headers, content=content or None, timeout=timeout
            )
        except (httpx.InvalidURL, UnicodeError) as exc:
            raise BadRequest("The request cannot be forwarded as sent") from exc
        try:
            breaker = await self.breakers.get_breaker(name)
            async with breaker:
                outcome = await self._send(upstream, request, _overall_bound(timeout))
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
        if isinstance(outcome, Exception):
            raise outcome  # ours, not the upstream's: outside the breaker
        return outcome

    async def _send(
        self, upstream: Upstream, request: httpx.Request, bound: float
    ) -> httpx.Response | Exception:
        """The upstream's answer, `_UpstreamFailed` for a failure of the upstream, or (as a
        value, so the breaker does not count it) an exception that is nobody's but ours."""
        attempts = 1 + (self.retries if request.method in IDEMPOTENT else 0)
        name = upstream.name
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(bound or None):
                    resp = await self.client.send(request)
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
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
                # We could not even say the request: nothing about the upstream.
                log.error("request not sendable", upstream=name, error=repr(exc))
                return exc
            except httpx.HTTPError as exc:
                log.warning("upstream error", upstream=name, error=type(exc).__name__)
                raise _UpstreamFailed(
                    None, UpstreamError(f"The {name} service failed", upstream=name)
                ) from exc
            except Exception as exc:  # a bug of ours (or a transport's) is not the upstream's
                log.exception("calling the upstream failed", upstream=name)
                return exc
            if resp.status_code in UNAVAILABLE_STATUSES:
                raise _UpstreamFailed(resp, None)
            return resp
        raise AssertionError("unreachable")
