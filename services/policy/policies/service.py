"""Policies and their versions: drafts, publication, archive, what-if.

A draft is edited in place. Editing a published policy starts the next version as a draft,
while the published version stays live and unchanged until that draft is published. Only a
sound rule (`validate_rule` finds nothing) is ever published; the check runs again at
publication, since a draft may have been saved unfinished.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import InvalidRule, NoPublishedEvaluation
from services.policy.criteria import Problem, Rule, validate_rule
from services.policy.matching.service import (
    RecomputeReport,
    compiled,
    current_evaluation,
    load_population,
    recompute,
    rule_key,
    what_if,
)
from services.policy.models import CultivationPool, Policy, PolicyVersion
from services.policy.policies.schemas import (
    PolicyContent,
    PolicyCreate,
    PolicyOut,
    PolicyStatus,
    WhatIfOut,
    counts,
)
from shared.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from shared.pagination import Page, PageParams


class UnknownPool(Unprocessable):
    slug = "unknown-pool"
    title = "Unknown cultivation pool"


class PolicyNotFound(NotFound):
    slug = "policy-not-found"
    title = "No such policy"


def rule_of(code: str, criteria: dict[str, Any]) -> dict[str, Any]:
    rule = {"id": rule_key("policy", code), "root": criteria}
    try:
        # Stored in canonical form when it parses, as submitted (to be fixed) when not.
        return Rule.model_validate(rule).model_dump(mode="json", exclude_none=True)
    except ValidationError:
        return rule


def problems_of(code: str, criteria: dict[str, Any]) -> list[Problem]:
    return validate_rule(rule_of(code, criteria))


def refuse(problems: list[Problem], what: str) -> InvalidRule:
    return InvalidRule(
        f"{what}: {len(problems)} problem(s) in the criteria",
        problems=[p.model_dump() for p in problems],
    )


async def _check_pools(session: AsyncSession, pools: list[str]) -> None:
    known = set(await session.scalars(select(CultivationPool.code)))
    unknown = sorted(set(pools) - known)
    if unknown:
        raise UnknownPool(f"No cultivation pool {', '.join(unknown)}", pools=unknown)


def _version_values(code: str, content: PolicyContent) -> dict[str, Any]:
    return {
        "title_zh": content.title_zh,
        "title_en": content.title_en,
        "department_zh": content.department_zh,
        "summary_zh": content.summary_zh,
        "benefits": [b.model_dump(mode="json") for b in content.benefits],
        "valid_from": content.valid_from,
        "valid_to": content.valid_to,
        "pools": list(content.pools),
        "rule": rule_of(code, content.criteria),
        "approximations": list(content.approximations),
    }


def policy_out(policy: Policy, version: PolicyVersion) -> PolicyOut:
    return PolicyOut(
        id=policy.id,
        code=policy.code,
        status=policy.status,
        version=version.version,
        version_status=version.status,
        latest_version=policy.latest_version,
        published_version=policy.published_version,
        title_zh=version.title_zh,
        title_en=version.title_en,
        department_zh=version.department_zh,
        summary_zh=version.summary_zh,
        benefits=version.benefits,
        valid_from=version.valid_from,
        valid_to=version.valid_to,
        pools=version.pools,
        criteria=version.rule.get("root", {}),
        approximations=version.approximations,
        illustrative=version.illustrative,
        problems=[Problem.model_validate(p) for p in version.problems],
        created_by=version.created_by,
        created_at=version.created_at,
        updated_at=version.updated_at,
        published_at=version.published_at,
        published_by=version.published_by,
        archived_at=policy.archived_at,
        archived_by=policy.archived_by,
    )


async def get_policy(session: AsyncSession, policy_id: uuid.UUID, *, lock: bool = False) -> Policy:
    stmt = select(Policy).where(Policy.id == policy_id)
    if lock:
        stmt = stmt.with_for_update()
    policy = (await session.scalars(stmt)).first()
    if policy is None:
        raise PolicyNotFound(f"No policy {policy_id}")
    return policy


async def visible_policies(
    session: AsyncSession,
    paging: PageParams,
    *,
    government: bool,
    status: PolicyStatus | None,
    pool: str | None,
) -> Page[PolicyOut]:
    """The policies a caller sees: the government, each at its latest version (drafts and
    archived too); everyone else, the published ones at their published version."""
    if not government:
        # Drafts and archived policies are the government's working material.
        status = "published"
    shown_version = Policy.latest_version if government else Policy.published_version
    query = (
        select(Policy, PolicyVersion)
        .join(
            PolicyVersion,
            (PolicyVersion.policy_id == Policy.id) & (PolicyVersion.version == shown_version),
        )
        .order_by(Policy.code)
    )
    if status is not None:
        query = query.where(Policy.status == status)
    if pool is not None:
        query = query.where(PolicyVersion.pools.contains([pool]))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(query.limit(paging.limit).offset(paging.offset))
    return Page.of([policy_out(p, v) for p, v in rows.tuples()], total, paging)


async def get_version(session: AsyncSession, policy: Policy, version: int) -> PolicyVersion:
    row = await session.get(PolicyVersion, (policy.id, version))
    if row is None:
        raise PolicyNotFound(f"Policy {policy.code} has no version {version}")
    return row


async def create_policy(
    session: AsyncSession, body: PolicyCreate, actor: str, *, allow_problems: bool
) -> tuple[Policy, PolicyVersion]:
    problems = problems_of(body.code, body.criteria)
    if problems and not allow_problems:
        raise refuse(problems, "Policy not saved")
    await _check_pools(session, body.pools)
    taken = await session.scalar(select(func.count()).where(Policy.code == body.code))
    if taken:
        raise Conflict(f"A policy with code {body.code!r} exists", code=body.code)
    policy = Policy(
        code=body.code,
        status="draft",
        latest_version=1,
        published_version=None,
        seeded=False,
        created_by=actor,
    )
    session.add(policy)
    await session.flush()
    version = PolicyVersion(
        policy_id=policy.id,
        version=1,
        status="draft",
        illustrative=False,
        problems=[p.model_dump() for p in problems],
        created_by=actor,
        **_version_values(body.code, body),
    )
    session.add(version)
    await session.flush()
    await session.refresh(policy)
    await session.refresh(version)
    return policy, version


async def update_policy(
    session: AsyncSession,
    policy_id: uuid.UUID,
    body: PolicyContent,
    actor: str,
    *,
    allow_problems: bool,
) -> tuple[Policy, PolicyVersion]:
    policy = await get_policy(session, policy_id, lock=True)
    if policy.status == "archived":
        raise InvalidTransition(f"Policy {policy.code} is archived")
    problems = problems_of(policy.code, body.criteria)
    if problems and not allow_problems:
        raise refuse(problems, "Policy not saved")
    await _check_pools(session, body.pools)
    latest = await get_version(session, policy, policy.latest_version)
    now = datetime.now(UTC)
    values = _version_values(policy.code, body)
    if latest.status == "draft":
        for key, value in values.items():
            setattr(latest, key, value)
        latest.problems = [p.model_dump() for p in problems]
        latest.created_by = actor
        latest.updated_at = now
        version = latest
    else:
        # A published version is never edited: the change becomes the next draft.
        version = PolicyVersion(
            policy_id=policy.id,
            version=policy.latest_version + 1,
            status="draft",
            illustrative=False,
            problems=[p.model_dump() for p in problems],
            created_by=actor,
            **values,
        )
        session.add(version)
        policy.latest_version = version.version
    policy.updated_at = now
    await session.flush()
    await session.refresh(version)
    return policy, version


async def publish_policy(
    session: AsyncSession, policy_id: uuid.UUID, *, near_max: int, by: str
) -> tuple[Policy, PolicyVersion, RecomputeReport]:
    policy = await get_policy(session, policy_id, lock=True)
    if policy.status == "archived":
        raise InvalidTransition(f"Policy {policy.code} is archived")
    draft = await get_version(session, policy, policy.latest_version)
    if draft.status != "draft":
        raise InvalidTransition(
            f"Version {draft.version} of {policy.code} is already {draft.status}; "
            "edit the policy to start a new draft"
        )
    # Checked again now: the draft may have been saved unfinished, or the fact vocabulary
    # may have changed since.
    problems = validate_rule(draft.rule)
    if problems:
        raise refuse(problems, f"Policy {policy.code} v{draft.version} cannot be published")
    await _check_pools(session, draft.pools)
    now = datetime.now(UTC)
    if policy.published_version is not None:
        live = await get_version(session, policy, policy.published_version)
        live.status = "superseded"
        live.updated_at = now
        # The partial unique index allows one published version: make room before the swap.
        await session.flush()
    draft.status = "published"
    draft.problems = []
    draft.published_at = now
    draft.published_by = by
    draft.updated_at = now
    policy.status = "published"
    policy.published_version = draft.version
    policy.updated_at = now
    await session.flush()
    report = await recompute(session, [rule_key("policy", policy.code)], near_max=near_max)
    return policy, draft, report


async def archive_policy(
    session: AsyncSession, policy_id: uuid.UUID, *, near_max: int, by: str
) -> tuple[Policy, PolicyVersion]:
    policy = await get_policy(session, policy_id, lock=True)
    if policy.status == "archived":
        raise InvalidTransition(f"Policy {policy.code} is already archived")
    now = datetime.now(UTC)
    versions = await session.scalars(
        select(PolicyVersion).where(
            PolicyVersion.policy_id == policy.id,
            PolicyVersion.status.in_(("draft", "published")),
        )
    )
    for v in versions:
        v.status = "archived"
        v.updated_at = now
    policy.status = "archived"
    policy.archived_at = now
    policy.archived_by = by
    policy.updated_at = now
    await session.flush()
    # The rule is no longer active: its matches go; pushes already made stay as history.
    await recompute(session, [rule_key("policy", policy.code)], near_max=near_max)
    shown = policy.published_version or policy.latest_version
    return policy, await get_version(session, policy, shown)


async def what_if_policy(
    session: AsyncSession, policy_id: uuid.UUID, version_no: int | None, *, near_max: int
) -> WhatIfOut:
    policy = await get_policy(session, policy_id)
    version = await get_version(session, policy, version_no or policy.latest_version)
    problems = validate_rule(version.rule)
    if problems:
        raise refuse(problems, f"Policy {policy.code} v{version.version} cannot be evaluated")
    evaluation = await current_evaluation(session)
    if evaluation is None:
        raise NoPublishedEvaluation("No published evaluation has been received from scoring")
    population = await load_population(session)
    result = what_if(compiled(version.rule)[0], population, near_max)
    published = None
    if policy.published_version is not None and policy.published_version != version.version:
        live = await get_version(session, policy, policy.published_version)
        published = counts(what_if(compiled(live.rule)[0], population, near_max).counts)
    return WhatIfOut(
        policy_id=policy.id,
        version=version.version,
        run_id=evaluation.run_id,
        period=evaluation.period,
        population=result.population,
        counts=counts(result.counts),
        by_stage={k: counts(v) for k, v in result.by_stage.items()},
        published=published,
    )
