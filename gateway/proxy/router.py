"""`/v1/scoring/X` → scoring `/v1/X` (likewise credit and policy).

The caller's credentials and anything identity-like never reach a service: only an allowlist
of request headers is forwarded (so `X-Principal`, `X-USCC`, `X-Bank-Id`, `X-User`, cookies
and the caller's own `Authorization` are dropped whatever their spelling), and the gateway
adds a fresh internal token whose audience is the one service called.

A plain Starlette-style endpoint (no FastAPI parameter parsing): this is the hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response

from gateway.auth.identity import Caller
from gateway.settings import UPSTREAMS
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import BadRequest, Forbidden
from shared.identifiers import canonical_uscc
from shared.logging import current_request_id

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# Request headers a service may see. Everything else is dropped.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "content-type",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "prefer",
        "traceparent",
        "tracestate",
        "user-agent",
    }
)
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


def _scope_check(principal: Principal, name: str, method: str) -> None:
    if principal.kind not in (PrincipalKind.GOVERNMENT, PrincipalKind.BANK):
        return
    needed = f"{name}:read" if method in READ_METHODS else WRITE_SCOPES[name]
    if not principal.has_scope(needed):
        raise InsufficientScope(
            f"This needs the scope {needed}", required_scope=needed, granted=principal.scopes
        )


def forward_headers(request: Request, token: str) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
    headers["authorization"] = f"Bearer {token}"
    rid = current_request_id()
    if rid:
        headers["x-request-id"] = rid
    if request.client is not None:
        headers["x-forwarded-for"] = request.client.host
    return headers


async def proxy(request: Request, name: str) -> Response:
    state = request.app.state
    path, segments = _upstream_path(request, name)
    caller: Caller = await state.identity.require(request)
    principal = caller.principal
    limit = (
        state.settings.rate_limit_enterprise
        if principal.kind is PrincipalKind.ENTERPRISE
        else state.settings.rate_limit_client
    )
    await state.limiter.check(limit, rate_limit_key(principal))
    _first_line_check(principal, segments)
    _scope_check(principal, name, request.method)
    # The size bound is BodyLimitMiddleware's, enforced while the body streams in.
    body = await request.body() if request.method in ("POST", "PUT", "PATCH", "DELETE") else b""
    token = state.identity.mint_internal(principal, name, state.settings.internal_token_ttl)
    resp = await state.upstreams.request(
        name,
        request.method,
        path,
        query=request.scope.get("query_string", b""),
        headers=forward_headers(request, token),
        content=body,
    )
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in DROPPED_RESPONSE_HEADERS}
    return Response(content=resp.content, status_code=resp.status_code, headers=headers)


def _endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await proxy(request, name)

    return endpoint


def router() -> APIRouter:
    r = APIRouter()
    for name in UPSTREAMS:
        r.add_route(
            f"/v1/{name}/{{path:path}}", _endpoint(name), methods=METHODS, include_in_schema=False
        )
    return r
