"""Policies (政策): the government writes, versions, publishes, archives and tries them out;
every authenticated caller reads the published ones."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.policy.common import actor
from services.policy.policies.schemas import (
    PolicyContent,
    PolicyCreate,
    PolicyOut,
    PolicyStatus,
    PublishOut,
    WhatIfOut,
    counts,
)
from services.policy.policies.service import (
    PolicyNotFound,
    archive_policy,
    create_policy,
    get_policy,
    get_version,
    policy_out,
    publish_policy,
    update_policy,
    visible_policies,
    what_if_policy,
)
from services.policy.settings import PolicySettings
from shared.auth.deps import CurrentPrincipal, GovernmentCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/policies", tags=["policies"], route_class=CommittingRoute)

AllowProblems = Annotated[
    bool,
    Query(
        description=(
            "Save an unfinished draft even though its criteria have problems (they are listed "
            "in `problems`; such a draft can be neither published nor tried)"
        )
    ),
]


def _near_max(request: Request) -> int:
    settings: PolicySettings = request.app.state.settings
    return settings.near_max


@router.get(
    "",
    response_model=Page[PolicyOut],
    summary="Policies: the published ones; the government sees drafts and archived ones too",
    responses=problem_responses(401, 403, 422),
)
async def list_policies(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    status: Annotated[PolicyStatus | None, Query()] = None,
    pool: Annotated[str | None, Query(max_length=32, description="Linked to this pool")] = None,
) -> Page[PolicyOut]:
    return await visible_policies(
        session, paging, government=principal.is_government, status=status, pool=pool
    )


@router.post(
    "",
    status_code=201,
    response_model=PolicyOut,
    summary="Create a policy (version 1, a draft)",
    responses=problem_responses(401, 403, 409, 422),
)
async def create(
    body: PolicyCreate,
    session: DbSession,
    principal: GovernmentCaller,
    allow_problems: AllowProblems = False,
) -> Any:
    policy, version = await create_policy(
        session, body, actor(principal), allow_problems=allow_problems
    )
    out = policy_out(policy, version)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/policies/{policy.id}"},
    )


@router.get(
    "/{policy_id}",
    response_model=PolicyOut,
    summary="A policy: its published version, or (government) its latest or any version",
    responses=problem_responses(401, 403, 404, 422),
)
async def get(
    policy_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> PolicyOut:
    policy = await get_policy(session, policy_id)
    if principal.is_government:
        return policy_out(
            policy, await get_version(session, policy, version or policy.latest_version)
        )
    if policy.published_version is None or policy.status != "published":
        raise PolicyNotFound(f"No policy {policy_id}")
    if version is not None and version != policy.published_version:
        raise PolicyNotFound(f"Policy {policy.code} has no published version {version}")
    return policy_out(policy, await get_version(session, policy, policy.published_version))


@router.put(
    "/{policy_id}",
    response_model=PolicyOut,
    summary="Edit: a draft in place; a published policy gets a new draft version",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def put(
    policy_id: uuid.UUID,
    body: PolicyContent,
    session: DbSession,
    principal: GovernmentCaller,
    allow_problems: AllowProblems = False,
) -> PolicyOut:
    policy, version = await update_policy(
        session, policy_id, body, actor(principal), allow_problems=allow_problems
    )
    return policy_out(policy, version)


@router.post(
    "/{policy_id}/publish",
    response_model=PublishOut,
    summary="Publish the latest draft; matches and pushes follow at once",
    description="A draft whose criteria have problems is refused with 422 listing them.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def publish(
    policy_id: uuid.UUID, request: Request, session: DbSession, principal: GovernmentCaller
) -> PublishOut:
    policy, version, report = await publish_policy(
        session, policy_id, near_max=_near_max(request), by=actor(principal)
    )
    out = policy_out(policy, version)
    matched = report.counts.get(f"policy:{policy.code}")
    return PublishOut(**out.model_dump(), matches=counts(matched or {}))


@router.post(
    "/{policy_id}/archive",
    response_model=PolicyOut,
    summary="Withdraw the policy: no longer matched or pushed",
    responses=problem_responses(401, 403, 404, 409),
)
async def archive(
    policy_id: uuid.UUID, request: Request, session: DbSession, principal: GovernmentCaller
) -> PolicyOut:
    policy, version = await archive_policy(
        session, policy_id, near_max=_near_max(request), by=actor(principal)
    )
    return policy_out(policy, version)


@router.post(
    "/{policy_id}/what-if",
    response_model=WhatIfOut,
    summary="Try a version (default: the latest draft) on the whole current population",
    description=(
        "How many enterprises of the latest published evaluation would be eligible, near, "
        "ineligible or unknown, overall and by stage; nothing is stored or pushed."
    ),
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def try_out(
    policy_id: uuid.UUID,
    request: Request,
    session: DbSession,
    _: GovernmentCaller,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> WhatIfOut:
    return await what_if_policy(session, policy_id, version, near_max=_near_max(request))
