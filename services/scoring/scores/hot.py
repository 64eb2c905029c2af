"""`GET /v1/enterprises/{uscc}/score` of the published run without FastAPI's routing and
dependency solving (a `shared.app.HotRoute`).

The profile of the read (issue 11) put the route's own work, one query and one orjson dump,
at a fifth of the request; dependency solving (the bearer scheme, the principal, the checked
and visible code, two query parameters) and routing through a dozen routers were a third.
This handler makes the same checks in the same terms, by the same functions where they are
functions (`get_authorization_scheme_param`, the service's `TokenVerifier`, the canonical
code, `can_see_enterprise`), and answers with the document the route answers with. It
answers only the plain case: a bearer token that verifies, a code that passes its check and
that the caller may see, no query or only a well-formed `period`, and a published score the
read path can show. Anything else goes on to the route, which answers as it always did, its
errors included. Two marks in the request's state spare the route repeating work:

* `SCORE_READ_MISSED`: the published read found nothing it can show (no such score, or a
  row the route must build itself); the route goes straight to `build_score`.
* `SCORE_READ_FAILED`: the query raised (the database unreachable...); the route raises the
  same exception after its own checks, so it is answered as before, without a second try.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Scope

from shared.app import HotRoute
from shared.hot import visible_enterprise

PATH = "/v1/enterprises/{uscc}/score"
SCORE_READ_MISSED = "score_read_missed"
SCORE_READ_FAILED = "score_read_failed"
_PERIOD_MIN, _PERIOD_MAX = 2000, 2100


def query_period(query: bytes) -> tuple[bool, int | None]:
    """Whether this handler takes the query, and its `period`: no query (the latest), or
    exactly `period=YYYY` within the route's bounds. Anything else is the route's."""
    if not query:
        return True, None
    if len(query) == 11 and query.startswith(b"period=") and query[7:].isdigit():
        year = int(query[7:])
        if _PERIOD_MIN <= year <= _PERIOD_MAX:
            return True, year
    return False, None


async def published_score(scope: Scope, params: dict[str, str]) -> Response | None:
    taken, period = query_period(scope["query_string"])
    if not taken:
        return None
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    principal, uscc = seen
    app: FastAPI = scope["app"]
    state: dict[str, Any] = scope["state"]
    try:
        doc = await app.state.score_reader.published_score(
            app.state.specs, uscc, period, with_person=principal.is_government
        )
    except Exception as exc:
        state[SCORE_READ_FAILED] = exc
        return None
    if doc is None:
        state[SCORE_READ_MISSED] = True
        return None
    return Response(orjson.dumps(doc), media_type="application/json")


HOT_ROUTES = [HotRoute("GET", PATH, published_score)]
