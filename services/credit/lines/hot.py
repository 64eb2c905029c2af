"""`GET /v1/enterprises/{uscc}/offers`, the mini-app's credit card on every dashboard,
without FastAPI's routing and dependency solving (`shared.app.HotRoute`, `shared.hot`).

The handler takes only what it reads exactly as the route does (no query, or one `sort` of
the route's four), calls the route's own endpoint function in a read session and serialises
through the route's response model; anything else, any problem the endpoint raises and any
failure on the way (the database away) is the route's to answer, as it always was.
"""

from __future__ import annotations

from typing import get_args

from starlette.responses import Response
from starlette.types import Scope

from services.credit.lines import router
from shared.app import HotRoute
from shared.hot import RouteAnswer, query_params, read_session, visible_enterprise

OFFERS = "/v1/enterprises/{uscc}/offers"
_ANSWER = RouteAnswer("GET", OFFERS)
_SORTS: dict[str, router.Sort] = {s: s for s in get_args(router.Sort)}


async def offers(scope: Scope, params: dict[str, str]) -> Response | None:
    pairs = query_params(scope, frozenset({"sort"}))
    if pairs is None or len(pairs) > 1 or any(v not in _SORTS for _, v in pairs):
        return None
    sort = _SORTS[pairs[0][1]] if pairs else "-amount"
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    try:
        async with read_session(scope["app"]) as session:
            answer = await router.offers(session=session, uscc=seen[1], sort=sort)
        return await _ANSWER(scope["app"], answer)
    except Exception:  # a problem, or the database away: the route answers it, as always
        return None


HOT_ROUTES = [HotRoute("GET", OFFERS, offers)]
