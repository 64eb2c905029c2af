"""What a hot read handler (`shared.app.HotRoute`) needs to answer exactly as its route does.

A hot handler answers the plain successful case of a GET without FastAPI's routing and
dependency solving, which on the mini-app's reads cost a third of the service's CPU (issue
11's profiles: `solve_dependencies` and the included routers' matching). It makes the route's
checks in the route's terms, by the same functions: the bearer scheme as `HTTPBearer` reads
it, the service's `TokenVerifier`, the canonical code, `can_see_enterprise`; it calls the
route's own service function in a read session, and serialises the result through the
route's own response field (`RouteAnswer`), so the bytes are the route's. Anything it does
not take exactly (another query parameter, a token that does not verify, a problem the
service raises) is left to the route, which answers as it always did, errors included.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute, serialize_response
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from starlette.types import Scope

from shared.app import routed
from shared.auth.deps import can_see_enterprise
from shared.auth.principal import Principal
from shared.errors import ProblemError
from shared.identifiers import canonical_uscc
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageParams

# `UsccPath`'s bound: a longer value is refused by the route (422) before anything else.
USCC_MAX = 32
# `Paging`'s bound on the offset.
_OFFSET_MAX = 10_000_000


@functools.lru_cache(maxsize=65_536)
def canonical(value: str) -> str | None:
    """`canonical_uscc`, remembered: it is a pure function, and python-stdnum's check was a
    twentieth of a score read."""
    return canonical_uscc(value)


def bearer_token(scope: Scope) -> str | None:
    """The credentials `HTTPBearer` would hand the route: of the first `Authorization`
    header, when its scheme is `Bearer` and it has any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, credentials = get_authorization_scheme_param(value.decode("latin-1"))
            if scheme.lower() != "bearer" or not credentials:
                return None
            return credentials
    return None


async def principal_of(app: FastAPI, scope: Scope) -> Principal | None:
    token = bearer_token(scope)
    if token is None:
        return None
    try:
        principal: Principal = await app.state.verifier.verify(token)
    except ProblemError:
        return None  # the route refuses it, with its own answer
    return principal


async def caller(scope: Scope) -> Principal | None:
    """The verified caller (what `CurrentPrincipal` gives a route), or None."""
    principal = await principal_of(scope["app"], scope)
    if principal is not None:
        scope.setdefault("state", {})["principal"] = principal
    return principal


def checked_code(raw: str) -> str | None:
    """The canonical code a `CheckedUSCC` would give the route, or None (the route's)."""
    return canonical(raw) if len(raw) <= USCC_MAX else None


async def visible_enterprise(scope: Scope, raw: str) -> tuple[Principal, str] | None:
    """The caller and the canonical code, when the caller may see that enterprise (what
    `VisibleUSCC` gives a route); None for anything the route must answer itself."""
    uscc = checked_code(raw)
    principal = await principal_of(scope["app"], scope) if uscc is not None else None
    if uscc is None or principal is None or not can_see_enterprise(principal, uscc):
        return None
    # What `authenticate` leaves for the rest of the request.
    scope.setdefault("state", {})["principal"] = principal
    return principal, uscc


def query_params(scope: Scope, allowed: frozenset[str]) -> list[tuple[str, str]] | None:
    """The query as Starlette parses it, when it names only `allowed` parameters; None
    (the route's) for anything else, an undecodable query included."""
    raw: bytes = scope["query_string"]
    if not raw:
        return []
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    if any(name not in allowed for name, _ in pairs):
        return None
    return pairs


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str] | None:
    """The query as one value per name; None when a name repeats (FastAPI would take the
    last, a case left to the route)."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            return None
        values[name] = value
    return values


def _number(value: str, low: int, high: int) -> int | None:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        return None
    number = int(value)
    return number if low <= number <= high else None


def page_params(values: dict[str, str]) -> PageParams | None:
    """`Paging` of `limit` and `offset` in their plain decimal form within the route's
    bounds; None for anything else (the route's 422 or its own reading)."""
    limit = _number(values.get("limit", str(DEFAULT_LIMIT)), 1, MAX_LIMIT)
    offset = _number(values.get("offset", "0"), 0, _OFFSET_MAX)
    if limit is None or offset is None:
        return None
    return PageParams(limit=limit, offset=offset)


class RouteAnswer:
    """The route's own serialisation of what its endpoint returns: its response field,
    through FastAPI's `serialize_response`, as the route's handler calls it."""

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        # Per app (tests make many): the route routing chooses for this path there.
        self._routes: weakref.WeakKeyDictionary[FastAPI, APIRoute] = weakref.WeakKeyDictionary()

    def _find(self, app: FastAPI) -> APIRoute:
        route = self._routes.get(app)
        if route is None:
            # `check_hot_routes` made sure it is the route the hot one shadows.
            sample = re.sub(r"\{\w+\}", "x", self.path)
            scope: Scope = {"type": "http", "method": self.method, "path": sample, "root_path": ""}
            found = routed(app.router.routes, scope)
            if not isinstance(found, APIRoute) or found.path != self.path:
                raise LookupError(f"no route {self.method} {self.path}")
            route = self._routes[app] = found
        return route

    async def __call__(self, app: FastAPI, value: Any) -> Response:
        route = self._find(app)
        content = await serialize_response(
            field=route.response_field,
            response_content=value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
            dump_json=True,
        )
        return Response(content, media_type="application/json")


async def answered(
    scope: Scope, answer: RouteAnswer, read: Callable[[AsyncSession], Awaitable[Any]]
) -> Response | None:
    """`read` in a read session, answered as the route answers; None, for the route to
    answer as it always did, when `read` declines (returns None) or anything on the way
    fails: a problem the service raises, the database away, a response that would not
    validate. The route then runs again and meets the same thing in its own terms."""
    app: FastAPI = scope["app"]
    # A session as `shared.db._session` gives a GET request.
    maker: async_sessionmaker[AsyncSession] = app.state.read_sessionmaker
    try:
        async with maker() as session:
            value = await read(session)
        if value is None:
            return None
        return await answer(app, value)
    except Exception:
        return None
