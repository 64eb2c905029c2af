"""`GET /v1/applications`, the list bank systems poll, without FastAPI's routing and
dependency solving (`shared.app.HotRoute`, `shared.hot`).

The handler takes only the unfiltered list with `limit` and `offset` in their plain form:
whose applications a caller sees is the service function's rule (an enterprise its own, a
bank those made to it, the government all), the same call the route makes. Filters, other
forms of the parameters, problems and failures are the route's to answer, as they were.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Scope

from services.credit.applications import service
from shared.app import HotRoute
from shared.hot import RouteAnswer, answered, caller, page_params, query_params, single_values

APPLICATIONS = "/v1/applications"
_ANSWER = RouteAnswer("GET", APPLICATIONS)


async def list_applications(scope: Scope, params: dict[str, str]) -> Response | None:
    pairs = query_params(scope, frozenset({"limit", "offset"}))
    values = None if pairs is None else single_values(pairs)
    paging = None if values is None else page_params(values)
    if paging is None:
        return None
    principal = await caller(scope)
    if principal is None:
        return None
    return await answered(
        scope,
        _ANSWER,
        lambda session: service.list_applications(session, principal, paging, None, None, None),
    )


HOT_ROUTES = [HotRoute("GET", APPLICATIONS, list_applications)]
