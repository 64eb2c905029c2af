"""`GET /v1/enterprises/{uscc}/offers`, the mini-app's credit card on every dashboard, and
`.../approved-amounts`, what bank systems poll, without FastAPI's routing and dependency
solving (`shared.app.HotRoute`) and without the ORM (`services.credit.reads`).

The handlers take only what they read exactly as the routes do (for offers no query or one
`sort` of the route's four; for approved amounts no query) and make the routes' checks by
the routes' own functions (`shared.hot`): the token, the canonical code, who may see the
enterprise. For a bank, the consent in force is the statement's own condition, the route's
predicate (`consents.service.in_force`) at the statement's time: without one the statement
returns nothing, and the route refuses. Each read is one statement (the current evaluation,
the score, the lines with their product versions and banks, for approved amounts the
applications), where the routes made three and five; its document is the route's, field for
field and in the route's order, written by orjson. No row (no published evaluation, or no
consent) or no score, another query, a problem or a failure is the route's to answer, as it
always was.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, get_args

from starlette.responses import Response
from starlette.types import Scope

from services.credit.lines import router
from services.credit.lines.rules import ANY_PRODUCT, LineRule, ScoreFacts, ineligibility
from services.credit.lines.schemas import RuleEvidence
from services.credit.reads import HotReads, answered, dumps
from shared.app import HotRoute
from shared.auth.deps import can_see_enterprise
from shared.auth.principal import PrincipalKind
from shared.hot import caller, checked_code, query_params, visible_enterprise

OFFERS = "/v1/enterprises/{uscc}/offers"
APPROVED = "/v1/enterprises/{uscc}/approved-amounts"
_SORTS: dict[str, router.Sort] = {s: s for s in get_args(router.Sort)}

# The newest published evaluation imported (`service.current_evaluation`) and the
# enterprise's score in it; no row when there is no evaluation, a NULL name when the
# enterprise is not in it.
_SCORED = """
WITH ev AS (
    SELECT run_id, period, model_version FROM credit.evaluations
    ORDER BY period DESC, event_id DESC LIMIT 1
)
SELECT ev.run_id, ev.period, ev.model_version, s.name, s.stage, s.scored, s.exclusion,
       s.total, s.rank, s.cohort_size, s.percentile, s.tier, {lists}
FROM ev LEFT JOIN credit.enterprise_scores s ON s.run_id = ev.run_id AND s.uscc = $1
"""

# $1 the code, $2 today. The route's `_OFFERS`: lines of the run, of products published at
# the line's version, valid today; in product order, which the route's query also asks for.
OFFERS_SQL = _SCORED.format(
    lists="""(
    SELECT array_agg(ROW(l.product_id, l.product_version, v.name, b.id, b.name, b.hotline,
                         l.amount, v.rate_min, v.rate_max, v.term_months, v.guarantee,
                         l.band, v.line_rule, v.max_amount) ORDER BY l.product_id)
    FROM credit.credit_lines l
    JOIN credit.products p ON p.id = l.product_id
    JOIN credit.product_versions v
      ON v.product_id = l.product_id AND v.version = l.product_version
    JOIN credit.banks b ON b.id = p.bank_id
    WHERE l.uscc = $1 AND l.run_id = ev.run_id
      AND p.status = 'published' AND p.published_version = l.product_version
      AND (v.valid_from IS NULL OR v.valid_from <= $2)
      AND (v.valid_to IS NULL OR v.valid_to >= $2)
) AS lines"""
)

# $1 the code, $2 the calling bank (NULL for the government and services, who see every
# bank's). The route's lines and applications queries, and for a bank its consent check.
APPROVED_SQL = (
    _SCORED.format(
        lists="""(
    SELECT array_agg(ROW(l.product_id, l.product_version, v.name, p.bank_id, l.amount,
                         l.band, v.line_rule, v.max_amount) ORDER BY p.bank_id, l.product_id)
    FROM credit.credit_lines l
    JOIN credit.products p ON p.id = l.product_id
    JOIN credit.product_versions v
      ON v.product_id = l.product_id AND v.version = l.product_version
    WHERE l.uscc = $1 AND l.run_id = ev.run_id AND ($2::text IS NULL OR p.bank_id = $2)
) AS lines, (
    SELECT array_agg(ROW(a.id, a.bank_id, a.product_id, a.product_version, a.status,
                         a.requested_amount, a.approved_amount, a.approved_rate,
                         a.approved_term_months, a.disbursed_amount) ORDER BY a.created_at, a.id)
    FROM credit.applications a
    WHERE a.uscc = $1 AND ($2::text IS NULL OR a.bank_id = $2)
) AS applications"""
    )
    + """WHERE $2::text IS NULL OR EXISTS (
    SELECT 1 FROM credit.consents c
    WHERE c.uscc = $1 AND c.bank_id = $2
      AND c.ended_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())
)
"""
)

_APPROVED_STATUSES = frozenset({"approved", "disbursed", "closed"})
_RULES: dict[tuple[str, int, int], dict[str, Any]] = {}
_RULES_LIMIT = 4096


def rule_evidence(line_rule: str, max_amount: int, band: int) -> dict[str, Any]:
    """`router.rule_evidence` as its JSON, remembered by the rule's own text: a published
    product version never changes, and the text is what the statement read."""
    key = (line_rule, max_amount, band)
    found = _RULES.get(key)
    if found is None:
        rule = LineRule.model_validate(json.loads(line_rule))
        found = RuleEvidence(
            basis=rule.basis,
            band=band,
            band_min=rule.bands[band].min if 0 <= band < len(rule.bands) else None,
            base_amount=rule.base_amount,
            max_amount=max_amount,
        ).model_dump()
        if len(_RULES) >= _RULES_LIMIT:
            _RULES.clear()
        _RULES[key] = found
    return found


def score_evidence(row: Any) -> dict[str, Any]:
    """`router.evidence`, as its JSON."""
    return {
        "run_id": str(row["run_id"]),
        "period": row["period"],
        "model_version": row["model_version"],
        "stage": row["stage"],
        "scored": row["scored"],
        "exclusion": row["exclusion"],
        "total": row["total"],
        "rank": row["rank"],
        "cohort_size": row["cohort_size"],
        "percentile": row["percentile"],
        "tier": row["tier"],
    }


async def offers_document(reads: HotReads, uscc: str, sort: router.Sort) -> bytes | None:
    """`router.offers`' document; None where the route raises (no evaluation, no score)."""
    row = await reads.connections.fetchrow(OFFERS_SQL, uscc, date.today())
    if row is None or row["name"] is None:
        return None
    items = [
        {
            "product_id": str(line[0]),
            "product_version": line[1],
            "product_name": line[2],
            "bank_id": line[3],
            "bank_name": line[4],
            "hotline": line[5],
            "amount": line[6],
            "rate_min": line[7],
            "rate_max": line[8],
            "term_months": line[9],
            "guarantee": line[10],
            "rule": rule_evidence(line[12], line[13], line[11]),
        }
        for line in row["lines"] or ()
    ]
    key = "amount" if sort.lstrip("-") == "amount" else "rate_min"
    items.sort(key=lambda o: (o[key], o["bank_id"]), reverse=sort.startswith("-"))
    reason = None
    if not items:
        facts = ScoreFacts(
            uscc, row["stage"], row["scored"], row["exclusion"], row["percentile"], row["tier"]
        )
        no_line = ineligibility(facts, ANY_PRODUCT)
        reason = no_line.value if no_line else "no-eligible-product"
    return dumps(
        {
            "uscc": uscc,
            "name": row["name"],
            "eligible": bool(items),
            "reason": reason,
            "score": score_evidence(row),
            "items": items,
            "total": len(items),
        }
    )


async def approved_document(reads: HotReads, uscc: str, bank_id: str | None) -> bytes | None:
    """`router.approved_amounts`' document (for `bank_id`'s eyes only when given, and only
    while a consent of the enterprise to it is in force); None where the route refuses or
    raises."""
    row = await reads.connections.fetchrow(APPROVED_SQL, uscc, bank_id)
    if row is None or row["name"] is None:
        return None
    lines = [
        {
            "product_id": str(line[0]),
            "product_version": line[1],
            "product_name": line[2],
            "bank_id": line[3],
            "amount": line[4],
            "rule": rule_evidence(line[6], line[7], line[5]),
        }
        for line in row["lines"] or ()
    ]
    apps = [
        {
            "id": str(a[0]),
            "bank_id": a[1],
            "product_id": str(a[2]),
            "product_version": a[3],
            "status": a[4],
            "requested_amount": a[5],
            "approved_amount": a[6],
            "approved_rate": a[7],
            "approved_term_months": a[8],
            "disbursed_amount": a[9],
        }
        for a in row["applications"] or ()
    ]
    return dumps(
        {
            "uscc": uscc,
            "name": row["name"],
            "score": score_evidence(row),
            "lines": lines,
            "applications": apps,
            "pre_approved_total": sum(line["amount"] for line in lines),
            "approved_total": sum(
                a["approved_amount"] or 0 for a in apps if a["status"] in _APPROVED_STATUSES
            ),
            "disbursed_total": sum(a["disbursed_amount"] or 0 for a in apps),
        }
    )


async def offers(scope: Scope, params: dict[str, str]) -> Response | None:
    pairs = query_params(scope, frozenset({"sort"}))
    if pairs is None or len(pairs) > 1 or any(v not in _SORTS for _, v in pairs):
        return None
    sort = _SORTS[pairs[0][1]] if pairs else "-amount"
    seen = await visible_enterprise(scope, params["uscc"])
    if seen is None:
        return None
    uscc = seen[1]
    return await answered(scope, lambda reads: offers_document(reads, uscc, sort))


async def approved_amounts(scope: Scope, params: dict[str, str]) -> Response | None:
    if scope["query_string"]:
        return None
    uscc = checked_code(params["uscc"])
    principal = await caller(scope) if uscc is not None else None
    if uscc is None or principal is None:
        return None
    # `ConsentedUSCC`: a bank while the enterprise's consent to it is in force (the
    # statement's condition), the others as `VisibleUSCC`; a refusal is the route's to give.
    if principal.kind is PrincipalKind.BANK:
        bank_id = principal.bank_id
        if bank_id is None:
            return None
    elif can_see_enterprise(principal, uscc):
        bank_id = None
    else:
        return None
    code = uscc
    return await answered(scope, lambda reads: approved_document(reads, code, bank_id))


HOT_ROUTES = [HotRoute("GET", OFFERS, offers), HotRoute("GET", APPROVED, approved_amounts)]
