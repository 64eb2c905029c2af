"""The mini-app's two policy reads, `GET /v1/enterprises/{uscc}/matches` and `.../pushes`,
without FastAPI's routing and dependency solving (`shared.app.HotRoute`, `shared.hot`).

Each is called by the dashboard on every mini-app home page. The handlers take only what
they can read exactly as the route reads it (the parameters named below, in the forms
FastAPI would accept without a doubt), call the route's own service function in a read
session and serialise through the route's own response model; anything else, and any
problem the service raises or failure on the way (the database away), is the route's to
answer: it runs again there and is answered as it always was.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Scope

from services.policy.criteria import STATUSES, Status
from services.policy.enterprises import service
from services.policy.matching.repository import entry_on
from services.policy.matching.service import rule_set_on
from shared.app import HotRoute
from shared.connections import Connections, lent
from shared.hot import (
    RouteAnswer,
    page_params,
    query_params,
    single_values,
    visible_enterprise,
)
from shared.pagination import PageParams

MATCHES = "/v1/enterprises/{uscc}/matches"
PUSHES = "/v1/enterprises/{uscc}/pushes"
_MATCHES_ANSWER = RouteAnswer("GET", MATCHES)
_PUSHES_ANSWER = RouteAnswer("GET", PUSHES)
_KINDS: dict[str, Literal["pool", "policy"]] = {"pool": "pool", "policy": "policy"}
_STATUS: dict[str, Status] = {s: s for s in STATUSES}


def _matches_query(scope: Scope) -> tuple[Literal["pool", "policy"] | None, list[Status]] | None:
    pairs = query_params(scope, frozenset({"kind", "status"}))
    if pairs is None:
        return None
    kinds = [v for k, v in pairs if k == "kind"]
    if len(kinds) > 1 or any(v not in _KINDS for v in kinds):
        return None
    statuses = [v for k, v in pairs if k == "status"]
    if any(v not in _STATUS for v in statuses):
        return None
    return (_KINDS[kinds[0]] if kinds else None), [_STATUS[v] for v in statuses]


# The bytes of recent answers, by everything they are a function of (`service.matches_of`):
# the code, what its entry was read from (facts, statuses, the evaluation) with the digest of
# the rules in force, and the query. Read from the same statement every time, so a new
# evaluation, a recompute or a rule published, edited or lapsing is another key, on every
# replica: nothing to invalidate. Bounded by bytes, least recently used out first.
_BODIES: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_BODIES_MAX_BYTES = 16 * 1024 * 1024
_bodies_bytes = 0


def _remember(key: tuple[Any, ...], body: bytes) -> None:
    global _bodies_bytes
    if len(body) > _BODIES_MAX_BYTES // 16:
        return
    _BODIES[key] = body
    _bodies_bytes += len(body)
    while _bodies_bytes > _BODIES_MAX_BYTES:
        _, dropped = _BODIES.popitem(last=False)
        _bodies_bytes -= len(dropped)


async def matches(scope: Scope, params: dict[str, str]) -> Response | None:
    query = _matches_query(scope)
    if query is None:
        return None
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    kind, statuses = query
    code = seen[1]
    app: FastAPI = scope["app"]
    connections: Connections = app.state.read_connections
    try:
        async with lent(connections) as conn:
            entry = await entry_on(conn, code)
            if entry is None:
                return None  # the route's problem
            key = (code, entry.content, kind, tuple(statuses))
            body = _BODIES.get(key)
            if body is not None:
                _BODIES.move_to_end(key)
                return Response(body, media_type="application/json")
            digest, rules = await rule_set_on(conn, connections.url, entry.rules_digest)
        if service.changed_rules(entry, rules):
            return None  # a recompute is on its way: the route explains as matched
        # The route passes no list (None) when no status is asked for.
        value = service.matches_of(code, entry, rules, {}, kind, statuses or None)
        response = await _MATCHES_ANSWER(app, value)
    except Exception:
        return None  # the route meets the same thing in its own terms
    if digest == entry.rules_digest:  # else the rules changed between the two reads
        _remember(key, bytes(response.body))
    return response


def _pushes_query(scope: Scope) -> tuple[PageParams, bool] | None:
    pairs = query_params(scope, frozenset({"unread", "limit", "offset"}))
    values = None if pairs is None else single_values(pairs)
    if values is None:
        return None
    unread = values.get("unread", "false")
    paging = page_params(values)
    if unread not in ("true", "false") or paging is None:
        return None
    return paging, unread == "true"


async def pushes(scope: Scope, params: dict[str, str]) -> Response | None:
    query = _pushes_query(scope)
    if query is None:
        return None
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    paging, unread = query
    app: FastAPI = scope["app"]
    try:
        async with lent(app.state.read_connections) as conn:
            page = await service.pushes_on(conn, seen[1], paging, unread=unread)
        return await _PUSHES_ANSWER(app, page)
    except Exception:
        return None  # the route meets the same thing in its own terms


HOT_ROUTES = [HotRoute("GET", MATCHES, matches), HotRoute("GET", PUSHES, pushes)]
