"""`GET /v1/enterprises/{uscc}/offers`, the mini-app's credit card on every dashboard, and
`.../approved-amounts`, what bank systems poll, without FastAPI's routing and dependency
solving (`shared.app.HotRoute`, `shared.hot`).

The handlers take only what they read exactly as the routes do (for offers no query or one
`sort` of the route's four; for approved amounts no query), make the routes' checks by the
routes' own functions (for a bank, the consent in force), call the routes' own endpoint
functions in a read session and serialise through their response models; anything else,
any problem raised on the way and any failure (the database away) is the route's to answer,
as it always was.
"""

from __future__ import annotations

from typing import Any, get_args

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.types import Scope

from services.credit.consents import service as consents
from services.credit.lines import router
from shared.app import HotRoute
from shared.auth.deps import can_see_enterprise
from shared.auth.principal import PrincipalKind
from shared.hot import (
    RouteAnswer,
    answered,
    caller,
    checked_code,
    query_params,
    visible_enterprise,
)

OFFERS = "/v1/enterprises/{uscc}/offers"
APPROVED = "/v1/enterprises/{uscc}/approved-amounts"
_ANSWER = RouteAnswer("GET", OFFERS)
_APPROVED_ANSWER = RouteAnswer("GET", APPROVED)
_SORTS: dict[str, router.Sort] = {s: s for s in get_args(router.Sort)}


async def offers(scope: Scope, params: dict[str, str]) -> Response | None:
    pairs = query_params(scope, frozenset({"sort"}))
    if pairs is None or len(pairs) > 1 or any(v not in _SORTS for _, v in pairs):
        return None
    sort = _SORTS[pairs[0][1]] if pairs else "-amount"
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    return await answered(
        scope, _ANSWER, lambda session: router.offers(session=session, uscc=seen[1], sort=sort)
    )


async def approved_amounts(scope: Scope, params: dict[str, str]) -> Response | None:
    if scope["query_string"]:
        return None
    uscc = checked_code(params["uscc"])
    principal = await caller(scope) if uscc is not None else None
    if uscc is None or principal is None:
        return None

    async def read(session: AsyncSession) -> Any:
        # `ConsentedUSCC`: a bank while the enterprise's consent to it is in force, the
        # others as `VisibleUSCC`; a refusal is the route's to give.
        if principal.kind is PrincipalKind.BANK:
            if principal.bank_id is None or not await consents.bank_may_see(
                session, uscc, principal.bank_id
            ):
                return None
        elif not can_see_enterprise(principal, uscc):
            return None
        return await router.approved_amounts(session=session, principal=principal, uscc=uscc)

    return await answered(scope, _APPROVED_ANSWER, read)


HOT_ROUTES = [HotRoute("GET", OFFERS, offers), HotRoute("GET", APPROVED, approved_amounts)]
