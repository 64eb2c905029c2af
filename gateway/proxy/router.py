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

A plain Starlette-style endpoint (no FastAPI parameter parsing): this is the hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response

from gateway.auth.identity import Caller
from gateway.bodylimit import import_deadline
from gateway.settings import UPSTREAMS
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import BadRequest, Forbidden
from shared.identifiers import canonical_uscc
from shared.logging import current_request_id

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
        deadline=import_deadline(request.scope, state.settings.import_timeout),
    )
    base_url = state.upstreams.by_name[name].base_url
    headers = {}
    for key, value in resp.headers.items():
        lower = key.lower()
        if lower in DROPPED_RESPONSE_HEADERS:
            continue
        headers[key] = (
            public_location(value, name, base_url) if lower in LOCATION_HEADERS else value
        )
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
