"""One enterprise's matches, each explained criterion by criterion, and its push feed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import NoPublishedEvaluation, UnknownEnterprise
from services.policy.criteria import (
    STATUSES,
    CriterionOutcome,
    GroupOutcome,
    PointsOutcome,
    RuleOutcome,
    Status,
)
from services.policy.enterprises.schemas import (
    PushOut,
    PushPage,
)
from services.policy.matching.repository import EnterpriseEntry, enterprise_entry, stored_rules
from services.policy.matching.service import (
    ActiveRule,
    active_rules,
    compiled,
    current_evaluation,
)
from shared.db import driver_connection
from shared.errors import NotFound
from shared.pagination import PageParams

log = structlog.get_logger("policy.enterprises")

# Most useful first: what the firm can claim, then what it is close to.
_ORDER: dict[str, int] = {"eligible": 0, "near": 1, "unknown": 2, "ineligible": 3}


def _criteria(outcome: RuleOutcome) -> list[dict[str, Any]]:
    """Every leaf, depth first, as `CriterionOut` fields; a points group (a self-evaluation)
    is one criterion whose actual is the points scored and threshold the pass mark."""
    out: list[dict[str, Any]] = []
    stack: list[CriterionOutcome | GroupOutcome | PointsOutcome] = [outcome.root]
    while stack:
        node = stack.pop()
        if isinstance(node, GroupOutcome):
            stack.extend(reversed(node.items))
        elif isinstance(node, PointsOutcome):
            out.append(
                {
                    "id": node.id,
                    "label_zh": node.label_zh,
                    "result": node.result,
                    "actual": node.total,
                    "threshold": node.pass_at,
                    "gap": node.gap,
                    "unit": "分",
                    "clause": node.clause,
                    "missing": node.missing,
                }
            )
        else:
            out.append(
                {
                    "id": node.id,
                    "label_zh": node.label_zh,
                    "result": node.result,
                    "actual": node.actual,
                    "threshold": node.threshold,
                    "gap": node.gap,
                    "unit": node.unit,
                    "clause": node.clause,
                    "missing": node.missing,
                }
            )
    return out


async def _missing(session: AsyncSession, uscc: str) -> Exception:
    if await current_evaluation(session) is None:
        return NoPublishedEvaluation("No published evaluation has been received from scoring")
    return UnknownEnterprise(f"{uscc} is not in the current published evaluation")


# An explanation depends only on the rule, the facts it reads and `near_max` (the engine reads
# no clock): kept per enterprise's facts, so an enterprise that comes back (the mini-app's
# dashboard and match pages) is not evaluated again while nothing of that changed. The key is
# the facts themselves, so a new evaluation or corrected facts are a different entry. Bounded
# (an entry is ~0.1 MB for 21 rules): least recently used first out.
_Explained = tuple[Status, list[str], list[str], list[dict[str, Any]]]
_EXPLAINED: OrderedDict[str, dict[tuple[str, int], _Explained]] = OrderedDict()
_EXPLAINED_MAX = 128


def _explanations(facts: Mapping[str, Any]) -> dict[tuple[str, int], _Explained]:
    key = repr(sorted(facts.items()))
    hit = _EXPLAINED.get(key)
    if hit is None:
        hit = _EXPLAINED[key] = {}
        if len(_EXPLAINED) > _EXPLAINED_MAX:
            _EXPLAINED.popitem(last=False)
    else:
        _EXPLAINED.move_to_end(key)
    return hit


async def matches(
    session: AsyncSession,
    code: str,
    kind: Literal["pool", "policy"] | None,
    status: list[Status] | None,
) -> dict[str, Any]:
    """The stored status under every active rule, each explained on demand.

    The explanation is computed from the stored facts with the rule and `near_max` the
    status was matched with, so it explains that status; the engine's bulk and
    one-enterprise paths agree (its tests hold them to it), which a warning here watches.

    Returns the fields of a `MatchList` as plain data: the route's response model validates
    and serialises them once (built as models here, they were validated twice more).
    """
    entry = await enterprise_entry(session, code)
    if entry is None:
        raise await _missing(session, code)
    rules = await active_rules(session, entry.rules_digest)
    changed = changed_rules(entry, rules)
    # A rule changed since it was matched (only until the recompute that follows commits):
    # explained with the rule as matched.
    as_matched = await stored_rules(session, changed) if changed else {}
    return matches_of(code, entry, rules, as_matched, kind, status)


def changed_rules(entry: EnterpriseEntry, rules: list[ActiveRule]) -> list[str]:
    """The keys of the rules in force that differ from the rule the status was matched with."""
    return [
        r.key
        for r in rules
        if r.key in entry.statuses and entry.statuses[r.key].fingerprint != r.fingerprint
    ]


def matches_of(
    code: str,
    entry: EnterpriseEntry,
    rules: list[ActiveRule],
    as_matched: Mapping[str, dict[str, Any]],
    kind: Literal["pool", "policy"] | None,
    status: list[Status] | None,
) -> dict[str, Any]:
    """`matches` of what it read: a function of its arguments alone (the hot read keeps its
    answers by them)."""
    assert entry.period is not None  # facts are kept for the current evaluation only
    items: list[dict[str, Any]] = []
    known = _explanations(entry.facts)
    for rule in rules:
        stored = entry.statuses.get(rule.key)
        if stored is None or (kind is not None and rule.kind != kind):
            continue
        st = STATUSES[stored.status]
        if status and st not in status:
            continue
        explained = (
            None if rule.key in as_matched else known.get((rule.fingerprint, stored.near_max))
        )
        if explained is None:
            engine = compiled(as_matched[rule.key])[0] if rule.key in as_matched else rule.compiled
            outcome = engine.evaluate(entry.facts, near_max=stored.near_max)
            explained = (
                outcome.status,
                outcome.blocking,
                outcome.missing_facts,
                _criteria(outcome),
            )
            if rule.key not in as_matched:
                known[(rule.fingerprint, stored.near_max)] = explained
        if explained[0] != st:
            log.warning("explanation disagrees with the stored status", rule=rule.key)
        items.append(
            {
                "kind": rule.kind,
                "code": rule.code,
                "policy_id": str(rule.policy_id) if rule.policy_id else None,
                "version": rule.version,
                "title": rule.title,
                "status": st,
                "blocking": explained[1],
                "missing_facts": explained[2],
                "criteria": explained[3],
            }
        )
    items.sort(key=lambda m: (_ORDER[m["status"]], m["kind"] != "pool"))
    return {
        "uscc": code,
        "name": entry.name,
        "stage": entry.stage,
        "score": entry.score,
        "run_id": str(entry.run_id),
        "period": entry.period,
        "items": items,
    }


def _push_out(p: Any) -> PushOut:
    """A row of the view `policy.pushes` (an asyncpg record or a row's mapping)."""
    kind, _, code = p["rule_key"].partition(":")
    return PushOut(
        id=p["id"],
        kind=kind,
        code=code,
        title=p["title"],
        status=STATUSES[p["status"]],
        run_id=str(p["run_id"]) if p["run_id"] else None,
        created_at=p["created_at"],
        read_at=p["read_at"],
        read=p["read_at"] is not None,
    )


_PUSH_FIELDS = "id, rule_key, title, status, run_id, created_at, read_at"


def _page_sql(only_unread: bool) -> str:
    """The counts and a page, in one statement: every mini-app dashboard reads it. A page
    past the end is one row of counts with no push (the LEFT JOIN's NULL id)."""
    unread = " AND read_at IS NULL" if only_unread else ""
    return f"""
        WITH c AS (
            SELECT count(*) AS total, count(*) FILTER (WHERE read_at IS NULL) AS unread
            FROM policy.pushes WHERE uscc = $1
        )
        SELECT c.total AS count_total, c.unread AS count_unread, p.*
        FROM c LEFT JOIN LATERAL (
            SELECT {_PUSH_FIELDS} FROM policy.pushes WHERE uscc = $1{unread}
            ORDER BY id DESC LIMIT $2 OFFSET $3
        ) p ON true
        ORDER BY p.id DESC
    """


_PAGE_SQL = {flag: _page_sql(flag) for flag in (False, True)}


async def pushes(session: AsyncSession, code: str, paging: PageParams, *, unread: bool) -> PushPage:
    """The enterprise's pushes, newest first (the view of its push sets)."""
    return await pushes_on(await driver_connection(session), code, paging, unread=unread)


async def pushes_on(conn: Any, code: str, paging: PageParams, *, unread: bool) -> PushPage:
    """`pushes` on an asyncpg connection."""
    rows = await conn.fetch(_PAGE_SQL[unread], code, paging.limit, paging.offset)
    first = rows[0]  # the counts' row is always there
    total = first["count_unread"] if unread else first["count_total"]
    items = [_push_out(p) for p in rows if p["id"] is not None]
    nxt = paging.offset + len(items)
    return PushPage(
        items=items,
        total=total,
        limit=paging.limit,
        offset=paging.offset,
        next_offset=nxt if nxt < total else None,
        unread=first["count_unread"],
    )


async def read_push(session: AsyncSession, code: str, push_id: int) -> PushOut:
    """Mark a push read (once: a second mark keeps the first time)."""
    select_push = text(f"SELECT {_PUSH_FIELDS} FROM policy.pushes WHERE uscc = :u AND id = :id")
    push = (await session.execute(select_push, {"u": code, "id": push_id})).first()
    if push is None:
        raise NotFound(f"No push {push_id} for {code}")
    if push.read_at is None:
        await session.execute(
            text(
                "INSERT INTO policy.push_reads (uscc, id, read_at) VALUES (:u, :id, :at) "
                "ON CONFLICT DO NOTHING"
            ),
            {"u": code, "id": push_id, "at": datetime.now(UTC)},
        )
        push = (await session.execute(select_push, {"u": code, "id": push_id})).one()
    return _push_out(push._mapping)
