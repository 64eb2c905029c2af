"""`/v1/scoring/X` → scoring `/v1/X` (likewise credit and policy).

The caller's credentials and anything identity-like never reach a service: only an allowlist
of request headers is forwarded (so `X-Principal`, `X-USCC`, `X-Bank-Id`, `X-User`, cookies
and the caller's own `Authorization` are dropped whatever their spelling), and the gateway
adds a fresh internal token whose audience is the one service called.

Forwarded headers travel as the bytes the caller sent, never decoded and encoded again (a
Latin-1 byte re-encoded as ASCII was a 500, issue 10). A value that is not UTF-8 is refused
with 400 before anything is sent: UTF-8 is the one encoding every hop (httpx, the aiohttp
transport, the service's server) carries unchanged, so what is forwarded is exactly what
was sent.

Service principals are refused here: our services call each other directly with internal
tokens for their registered audiences and have no business with the public API (a leaked
service secret must not read every bank's and enterprise's data from the internet).

A service's `Location` names its own path (`/v1/applications/7`); the caller is told the
public one (`/v1/credit/applications/7`).

This is the hot path: an ASGI endpoint reached without the router (`ProxyFastPath`), calling
the service with aiohttp directly (`gateway.proxy.upstreams`).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth.identity import Caller
from gateway.bodylimit import PROXIED_PREFIXES as _PROXIED
from gateway.bodylimit import BodyLimitMiddleware, import_deadline, limited_receive
from gateway.proxy.upstreams import Answer
from gateway.settings import UPSTREAMS
from shared.app import _own_origins as own_origins
from shared.app import _relative as relative_location
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import BadRequest, Forbidden
from shared.identifiers import canonical_uscc
from shared.logging import (
    bind_request_id,
    current_request_id,
    unbind_request_id,
    with_request_id,
)
from shared.metrics import observe_request

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# Request headers a service may see. Everything else is dropped.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        b"accept",
        b"accept-language",
        b"content-type",
        b"idempotency-key",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"prefer",
        b"traceparent",
        b"tracestate",
        b"user-agent",
    }
)
# Response headers that carry a URL of the service, to be made public.
LOCATION_HEADERS = frozenset({"location", "content-location"})
# Response headers that describe the hop, not the answer; the rest is passed back.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "set-cookie",
        "x-request-id",
    }
)


def rate_limit_key(principal: Principal) -> str:
    if principal.kind is PrincipalKind.ENTERPRISE:
        return f"enterprise:{principal.uscc}"
    return f"{principal.kind.value}:{principal.sub}"


def _upstream_path(request: Request, name: str) -> tuple[str, list[str]]:
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    raw = raw.split(b"?", 1)[0]
    prefix = f"/v1/{name}/".encode()
    if not raw.startswith(prefix):
        # The route matched the decoded path; a raw one that differs before the first
        # segment (`/v1/policy%2Fenterprises/...`) would have us check one path and forward
        # another.
        raise BadRequest(f"The path must start /v1/{name}/ as sent, without encoded characters")
    rest = raw[len(prefix) - 1 :].decode("latin-1")
    segments = [unquote(s) for s in rest.split("/")[1:]]
    # Dot segments could climb out of /v1 to a service's /metrics or /readyz.
    if any(s in (".", "..") or "/" in s or "\\" in s for s in segments):
        raise BadRequest("Path segments '.' and '..' are not allowed")
    return "/v1" + rest, segments


def _first_line_check(principal: Principal, segments: list[str]) -> None:
    # The services enforce this themselves; the gateway refuses early what is plainly
    # another enterprise's data, so such requests never cost a service a query.
    if (
        principal.kind is PrincipalKind.ENTERPRISE
        and len(segments) >= 2
        and segments[0] == "enterprises"
        and (principal.uscc is None or canonical_uscc(segments[1]) != principal.uscc)
    ):
        raise Forbidden("You may only see your own enterprise's data")


# What a client (government portal, bank system) must have been granted, per service: reads
# need `<service>:read`, changes the service's write scope. Enterprises are bound to their
# own USCC instead, and each service still checks the principal's kind itself.
WRITE_SCOPES = {"scoring": "scoring:admin", "policy": "policy:admin", "credit": "credit:decide"}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InsufficientScope(Forbidden):
    slug = "insufficient-scope"
    title = "The client was not granted this"


class MalformedHeader(BadRequest):
    slug = "malformed-header"
    title = "A header cannot be forwarded"


class ServicePrincipalRefused(Forbidden):
    slug = "service-principal-refused"
    title = "Services do not use the public API"


def _scope_check(principal: Principal, name: str, method: str) -> None:
    if principal.kind is PrincipalKind.SERVICE:
        raise ServicePrincipalRefused(
            "A service calls the other services directly, with an internal token for its "
            "registered audiences"
        )
    if principal.kind not in (PrincipalKind.GOVERNMENT, PrincipalKind.BANK):
        return
    needed = f"{name}:read" if method in READ_METHODS else WRITE_SCOPES[name]
    if not principal.has_scope(needed):
        raise InsufficientScope(
            f"This needs the scope {needed}", required_scope=needed, granted=principal.scopes
        )


def _display_name(name: bytes) -> str:
    return "-".join(part.capitalize() for part in name.decode("ascii", "replace").split("-"))


def forward_headers(request: Request, token: str) -> list[tuple[bytes, bytes]]:
    """The allowlisted headers as raw bytes, plus ours; a value that is not UTF-8 is a 400."""
    headers: list[tuple[bytes, bytes]] = []
    # ASGI gives header names lower-cased.
    for name, value in request.scope["headers"]:
        if name not in FORWARDED_REQUEST_HEADERS:
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedHeader(
                f"The {_display_name(name)} header is not valid UTF-8 text",
                header=_display_name(name),
            ) from None
        headers.append((name, value))
    headers.append((b"authorization", f"Bearer {token}".encode()))
    rid = current_request_id()
    if rid:
        headers.append((b"x-request-id", rid.encode()))
    if request.client is not None:
        headers.append((b"x-forwarded-for", request.client.host.encode()))
    return headers


def public_location(value: str, name: str, base_url: str) -> str:
    """A service's URL of itself as the caller sees it: `/v1/X` at the service is
    `/v1/<name>/X` here. Absolute URLs of the service lose its address too."""
    if value.startswith(base_url + "/"):
        value = value[len(base_url) :]
    if value == "/v1" or value.startswith(("/v1/", "/v1?")):
        return f"/v1/{name}" + value[3:]
    return value


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its bound is BodyLimitMiddleware's, enforced as it streams)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def answer_headers(answer: Answer, name: str, base_url: str) -> list[tuple[bytes, bytes]]:
    """The service's response headers the caller gets, `Content-Length` of the body added."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in answer.headers:
        if key in _DROPPED:
            continue
        if key in _LOCATION:
            value = public_location(value.decode("latin-1"), name, base_url).encode("latin-1")
        headers.append((key, value))
    status = answer.status_code
    if not (status < 200 or status in (204, 304)):
        headers.append((b"content-length", str(len(answer.content)).encode()))
    return headers


_DROPPED = frozenset(h.encode() for h in DROPPED_RESPONSE_HEADERS)
_LOCATION = frozenset(h.encode() for h in LOCATION_HEADERS)


class ProxyEndpoint:
    """The proxy of one upstream as an ASGI endpoint: no request or response objects are
    built beyond what authentication reads, and the answer is sent as the service's raw
    headers, filtered once (this is the hot path: see `ProxyFastPath`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.name
        request = Request(scope, receive)
        state = request.app.state
        settings = state.settings
        path, segments = _upstream_path(request, name)
        caller: Caller = await state.identity.require(request)
        principal = caller.principal
        limit = (
            settings.rate_limit_enterprise
            if principal.kind is PrincipalKind.ENTERPRISE
            else settings.rate_limit_client
        )
        await state.limiter.check(limit, rate_limit_key(principal))
        _first_line_check(principal, segments)
        method: str = scope["method"]
        _scope_check(principal, name, method)
        body = await read_body(receive) if method in BODY_METHODS else b""
        token = state.identity.mint_internal(principal, name, settings.internal_token_ttl)
        upstreams = state.upstreams
        answer = await upstreams.request(
            name,
            method,
            path,
            query=scope.get("query_string", b""),
            headers=forward_headers(request, token),
            content=body,
            deadline=import_deadline(scope, settings.import_timeout),
        )
        headers = answer_headers(answer, name, upstreams.by_name[name].base_url)
        await send(
            {"type": "http.response.start", "status": answer.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": answer.content})


def proxy_routes() -> list[Route]:
    """`/v1/<name>/{path}` for every upstream (HEAD comes with GET, as for any route)."""
    return [
        Route(
            f"/v1/{name}/{{path:path}}",
            ProxyEndpoint(name),
            methods=METHODS,
            include_in_schema=False,
        )
        for name in UPSTREAMS
    ]


def router() -> APIRouter:
    r = APIRouter()
    r.routes.extend(proxy_routes())
    return r


class ProxyFastPath:
    """The proxied routes without the router and the middleware layers in between.

    The outermost user middleware of the gateway. A request for a proxy route (path and
    method as the route takes them) is answered here, doing in one layer what the
    application's stack would have done on the way to the proxy endpoint: the request id
    (`RequestIdMiddleware`, the same rule as `ServiceMiddleware`'s), the body limit, the
    request metrics under the route's template (`observe_request`), relative redirects, and
    the problem answers of the application's own exception handlers. Anything else (another
    path, or a method the route does not take: 405 from the router as before) goes down the
    application's stack. An unexpected exception propagates
    to Starlette's error middleware, as it would have.
    """

    def __init__(
        self,
        app: ASGIApp,
        root: FastAPI,
        component: str,
        proxied_max: int,
        import_max: int,
    ) -> None:
        self.app = app
        self.routes = proxy_routes()
        self.by_prefix = {route.path.removesuffix("{path:path}"): route for route in self.routes}
        self.component = component
        self.limits = BodyLimitMiddleware(app, proxied_max=proxied_max, import_max=import_max)
        # As Starlette's ExceptionMiddleware keeps them: by status code and by class.
        handlers = {k: h for k, h in root.exception_handlers.items() if k not in (500, Exception)}
        self.status_handlers = {k: h for k, h in handlers.items() if isinstance(k, int)}
        self.class_handlers = {k: h for k, h in handlers.items() if not isinstance(k, int)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PROXIED):
            route = self._match(scope)
            if route is not None:
                scope["route"] = route
                await self._handle(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> Route | None:
        """The proxy route taking this request, its path parameter set as the router would."""
        path: str = scope["path"]
        prefix = path[: path.find("/", 4) + 1]
        route = self.by_prefix.get(prefix)
        if route is not None and not scope.get("root_path") and "\n" not in path:
            # What the route's pattern matches: everything after the prefix (`.` stops only
            # at a newline, and the whole path is its own when there is no root path).
            if route.methods is not None and scope["method"] not in route.methods:
                return None
            scope["endpoint"] = route.endpoint
            scope["path_params"] = {**scope.get("path_params", {}), "path": path[len(prefix) :]}
            return route
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                return route
        return None

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request id as `RequestIdMiddleware` gives it, in this layer's own wrapper.
        rid, rid_token = bind_request_id(scope)
        rid_bytes = rid.encode()
        start = time.perf_counter()
        status = 500
        started = False

        async def respond(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message.get("headers", [])
                if 300 <= status < 400:
                    own = own_origins(scope)
                    headers = [
                        (k, relative_location(v, own) if k == b"location" else v)
                        for k, v in headers
                    ]
                message["headers"] = with_request_id(headers, rid_bytes)
            await send(message)

        try:
            route: Route = scope["route"]
            try:
                await route.app(scope, self._limited(scope, receive), respond)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                if started:
                    raise RuntimeError(
                        "Caught handled exception, but response already started."
                    ) from exc
                response = await handler(Request(scope, receive), exc)
                await response(scope, receive, respond)
        finally:
            observe_request(
                self.component,
                scope["method"],
                scope["route"].path,
                status,
                time.perf_counter() - start,
            )
            unbind_request_id(rid_token)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        # Only the methods whose body the proxy reads; the bound is BodyLimitMiddleware's.
        if scope["method"] not in BODY_METHODS:
            return receive
        return limited_receive(scope, receive, self.limits.limit(scope))

    def _handler(self, exc: Exception) -> Any:
        if isinstance(exc, HTTPException) and exc.status_code in self.status_handlers:
            return self.status_handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self.class_handlers:
                return self.class_handlers[cls]
        return None
