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
import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import structlog
from httpx_aiohttp.transport import map_aiohttp_exceptions
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from yarl import URL

from gateway.proxy.http1 import Http1Pool, Origin, request_head
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

    def __init__(self, response: Answer | None, problem: Exception | None) -> None:
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


class Answer:
    """An upstream's answer, read in full: status, raw headers (names lower-cased) and body.

    What the proxy passes back and the dashboard reads; the same whichever client fetched it.
    """

    __slots__ = ("content", "headers", "status_code")

    def __init__(
        self, status_code: int, headers: list[tuple[bytes, bytes]], content: bytes
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


# Path and query characters httpx sends exactly as given (checked by a test against httpx's
# own URL parsing): a URL made only of these needs no parsing before aiohttp sends it. Any
# other (non-ASCII, a space, `#`), or a dot segment, goes through httpx.URL, so the bytes
# on the wire are the ones httpx would have sent.
_PATH_AS_IS = r"A-Za-z0-9!$%&'()*+,\-./:;=@\[\\\]^_|~"
_AS_IS = re.compile("[" + _PATH_AS_IS + "]*(\\?[" + _PATH_AS_IS + "`{}?]*)?")


def upstream_url(base_url: str, path: str, query: bytes) -> str:
    """`base_url` + path + query as the request line will carry them; `BadRequest` when the
    caller's path or query cannot be said as a URL."""
    target = path + ("?" + query.decode("latin-1") if query else "")
    # Dot segments are httpx's to remove (the proxy refuses them before this anyway).
    if _AS_IS.fullmatch(target) and "/." not in path:
        return base_url + target
    try:
        url = httpx.URL(base_url + target)
        return base_url + url.raw_path.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise BadRequest("The request cannot be forwarded as sent") from exc


class Sender(Protocol):
    """One HTTP exchange with an upstream. `prepare` refuses what cannot be sent (a 400,
    before the breaker); `send` raises httpx's exceptions for failures."""

    def prepare(
        self, method: str, url: str, headers: Headers, content: bytes, timeout: httpx.Timeout
    ) -> Any: ...

    async def send(self, prepared: Any) -> Answer: ...


class HttpxSender:
    """Through an httpx client: tests route it in-process, tracing instruments it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def prepare(
        self, method: str, url: str, headers: Headers, content: bytes, timeout: httpx.Timeout
    ) -> httpx.Request:
        try:
            return self.client.build_request(
                method, url, headers=headers, content=content or None, timeout=timeout
            )
        except (httpx.InvalidURL, UnicodeError) as exc:
            raise BadRequest("The request cannot be forwarded as sent") from exc

    async def send(self, prepared: httpx.Request) -> Answer:
        resp = await self.client.send(prepared)
        return Answer(resp.status_code, [(k.lower(), v) for k, v in resp.headers.raw], resp.content)


_AiohttpCall = tuple[str, URL, list[tuple[str, str]] | dict[str, str], bytes | None, Any]


class AiohttpSender:
    """aiohttp's client called directly: the proxy's hot path.

    httpx over aiohttp (httpx-aiohttp) cost about a third of the gateway's CPU per proxied
    request in a profile (its request and response models, URL parsing, cookie extraction)
    on top of aiohttp's own. Failures are mapped to the httpx exceptions that transport
    raised, so `Upstreams` classifies them exactly as before. A compressed answer is
    decoded, as httpx decoded it (the proxy drops `Content-Encoding` and `Content-Length`).
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _timeout(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        # As httpx-aiohttp maps them: connect per socket, the pool wait as aiohttp's connect.
        key = (timeout.connect, timeout.read, timeout.pool)
        mapped = self._timeouts.get(key)
        if mapped is None:
            if len(self._timeouts) > 64:  # per-call deadlines (imports, the dashboard)
                self._timeouts.clear()
            mapped = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
            )
        return mapped

    def prepare(
        self, method: str, url: str, headers: Headers, content: bytes, timeout: httpx.Timeout
    ) -> _AiohttpCall:
        try:
            # aiohttp writes header text as UTF-8: decoded as UTF-8 here (the proxy has
            # refused anything else), the bytes sent are the bytes the caller sent.
            text = (
                headers
                if isinstance(headers, dict)
                else [(k.decode("ascii"), v.decode("utf-8")) for k, v in headers]
            )
        except UnicodeError as exc:
            raise BadRequest("The request cannot be forwarded as sent") from exc
        return (method, URL(url, encoded=True), text, content or None, self._timeout(timeout))

    async def send(self, prepared: _AiohttpCall) -> Answer:
        method, url, headers, data, timeout = prepared
        with map_aiohttp_exceptions():
            async with self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=True,
                timeout=timeout,
            ) as resp:
                body = await resp.read()
                return Answer(resp.status, [(k.lower(), v) for k, v in resp.raw_headers], body)


_Http1Call = tuple[Origin, str, bytes, bytes, httpx.Timeout]


class Http1Sender:
    """The proxy's own keep-alive HTTP/1.1 client (`gateway.proxy.http1`: why, and what it
    keeps from aiohttp); failures are raised as the httpx exceptions `AiohttpSender` raised."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool

    def prepare(
        self, method: str, url: str, headers: Headers, content: bytes, timeout: httpx.Timeout
    ) -> _Http1Call:
        # `url` is `upstream_url`'s: the upstream's base URL and an ASCII target.
        scheme_end = url.index("://") + 3
        slash = url.find("/", scheme_end)
        base, target = (url, "/") if slash < 0 else (url[:slash], url[slash:])
        try:
            origin = self.pool.origin(base)
            head = request_head(method, target, origin, headers, len(content))
        except (ValueError, UnicodeError) as exc:
            raise BadRequest("The request cannot be forwarded as sent") from exc
        return (origin, method, head, content, timeout)

    async def send(self, prepared: _Http1Call) -> Answer:
        origin, method, head, content, timeout = prepared
        status, headers, body = await self.pool.request(origin, method, head, content, timeout)
        return Answer(status, headers, body)


class Upstreams:
    def __init__(
        self,
        settings: GatewaySettings,
        client: httpx.AsyncClient,
        session: aiohttp.ClientSession | None = None,
        tracing: Callable[[], bool] = lambda: False,
        fast: Sender | None = None,
    ) -> None:
        """`fast`: the hot path's sender (`Http1Sender`), else aiohttp's `session`
        (`AiohttpSender`); without either (tests' in-process transport,
        `upstream_transport=httpx`) and while tracing is on (its client spans come from
        the instrumented httpx client), calls go through `client`."""
        self.client = client
        self.httpx = HttpxSender(client)
        if fast is None and session is not None:
            fast = AiohttpSender(session)
        self.fast: Sender | None = fast
        self.tracing = tracing
        self._sender: Sender | None = None
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

    def sender(self) -> Sender:
        if self._sender is None:
            # Tracing is configured once, before the first request; asked then, not per call.
            self._sender = self.httpx if self.fast is None or self.tracing() else self.fast
        return self._sender

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
    ) -> Answer:
        upstream = self.by_name[name]
        # The caller's mistakes (a URL or header that cannot be sent) are found before the
        # breaker is entered: they are a 400 and never count against the upstream.
        url = upstream_url(upstream.base_url, path, query)
        timeout = deadline or upstream.timeout
        sender = self.sender()
        prepared = sender.prepare(method, url, headers, content, timeout)
        try:
            breaker = await self.breakers.get_breaker(name)
            async with breaker:
                outcome = await self._send(
                    sender, upstream, method, prepared, _overall_bound(timeout)
                )
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
        self,
        sender: Sender,
        upstream: Upstream,
        method: str,
        prepared: Any,
        bound: float,
    ) -> Answer | Exception:
        """The upstream's answer, `_UpstreamFailed` for a failure of the upstream, or (as a
        value, so the breaker does not count it) an exception that is nobody's but ours."""
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        name = upstream.name
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(bound or None):
                    resp = await sender.send(prepared)
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
