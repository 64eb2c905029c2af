"""`GET /v1/applications`, the list bank systems poll, without FastAPI's routing and
dependency solving (`shared.app.HotRoute`) and without the ORM (`services.credit.reads`).

The handler takes only the unfiltered list with `limit` and `offset` in their plain form.
Whose applications a caller sees is the service function's rule (`service.list_applications`:
an enterprise its own, a bank those made to it, the government and services all), chosen
here by the same principal kinds; the count and the page are one statement (the route made
two), so they are of one snapshot. Filters, other forms of the parameters, problems and
failures are the route's to answer, as they were.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from services.credit.reads import HotReads, answered, dumps
from shared.app import HotRoute
from shared.auth.principal import Principal, PrincipalKind
from shared.hot import caller, page_params, query_params, single_values
from shared.pagination import PageParams

APPLICATIONS = "/v1/applications"

_COLUMNS = """id, uscc, enterprise_name, bank_id, product_id, product_version, status,
    requested_amount, requested_term_months, run_id, period, stage, percentile, tier, total,
    line_amount, approved_amount, approved_rate, approved_term_months, reason_codes,
    disbursed_amount, created_at, updated_at, decided_at, disbursed_at, closed_at"""
# The service's order, newest first; $1 the filter's value (when there is one), then the
# page's limit and offset.
_PAGE = """
SELECT (SELECT count(*) FROM credit.applications {where}) AS total, (
    SELECT array_agg(ROW({columns}) ORDER BY created_at DESC, id)
    FROM (
        SELECT {columns} FROM credit.applications {where}
        ORDER BY created_at DESC, id LIMIT ${limit} OFFSET ${offset}
    ) page
) AS items
"""
_BY_KIND = {
    PrincipalKind.ENTERPRISE: _PAGE.format(
        where="WHERE uscc = $1", columns=_COLUMNS, limit=2, offset=3
    ),
    PrincipalKind.BANK: _PAGE.format(
        where="WHERE bank_id = $1", columns=_COLUMNS, limit=2, offset=3
    ),
}
_ALL = _PAGE.format(where="", columns=_COLUMNS, limit=1, offset=2)


def _filter(principal: Principal) -> tuple[str, tuple[str, ...]] | None:
    """The statement and its filter argument for what the caller sees; None for a
    principal the service's rule would give an empty list (left to the route)."""
    if principal.kind is PrincipalKind.ENTERPRISE:
        value = principal.uscc
    elif principal.kind is PrincipalKind.BANK:
        value = principal.bank_id
    else:
        return _ALL, ()
    return None if value is None else (_BY_KIND[principal.kind], (value,))


def application(a: Any) -> dict[str, Any]:
    """`service.to_out(app, None)` as its JSON, of a row in `_COLUMNS`' order."""
    return {
        "id": str(a[0]),
        "uscc": a[1],
        "enterprise_name": a[2],
        "bank_id": a[3],
        "product_id": str(a[4]),
        "product_version": a[5],
        "status": a[6],
        "requested_amount": a[7],
        "requested_term_months": a[8],
        "evidence": {
            "run_id": str(a[9]),
            "period": a[10],
            "stage": a[11],
            "percentile": a[12],
            "tier": a[13],
            "total": a[14],
            "line_amount": a[15],
        },
        "approved_amount": a[16],
        "approved_rate": a[17],
        "approved_term_months": a[18],
        "reason_codes": a[19],
        "disbursed_amount": a[20],
        "created_at": a[21],
        "updated_at": a[22],
        "decided_at": a[23],
        "disbursed_at": a[24],
        "closed_at": a[25],
        "history": None,
    }


async def page_document(
    reads: HotReads, sql: str, args: tuple[str, ...], paging: PageParams
) -> bytes | None:
    """`Page[ApplicationOut]` of the service's list as its JSON."""
    row = await reads.connections.fetchrow(sql, *args, paging.limit, paging.offset)
    if row is None:
        return None
    items = [application(a) for a in row["items"] or ()]
    total: int = row["total"]
    nxt = paging.offset + len(items)
    return dumps(
        {
            "items": items,
            "total": total,
            "limit": paging.limit,
            "offset": paging.offset,
            "next_offset": nxt if nxt < total else None,
        }
    )


async def list_applications(scope: Scope, params: dict[str, str]) -> Response | None:
    pairs = query_params(scope, frozenset({"limit", "offset"}))
    values = None if pairs is None else single_values(pairs)
    paging = None if values is None else page_params(values)
    if paging is None:
        return None
    principal = await caller(scope)
    chosen = None if principal is None else _filter(principal)
    if chosen is None:
        return None
    sql, args = chosen
    page = paging
    return await answered(scope, lambda reads: page_document(reads, sql, args, page))


HOT_ROUTES = [HotRoute("GET", APPLICATIONS, list_applications)]
