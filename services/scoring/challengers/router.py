"""Challenger models: a version in shadow against the champion, and its stored report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.scoring.challengers import service
from services.scoring.evaluations.service import execute_run, get_run
from shared.app import start_background
from shared.auth.deps import GovernmentCaller, actor, require_kind
from shared.auth.principal import Principal, PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["model governance"], route_class=CommittingRoute)

GovernmentOrBank = Annotated[
    Principal, Depends(require_kind(PrincipalKind.GOVERNMENT, PrincipalKind.BANK))
]


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: int = Field(
        ge=2000, le=2100, description="The period whose published run is the champion"
    )
    downstream: bool = Field(True, description="Ask credit and policy for their what-ifs")
    wait: bool = Field(
        True,
        description=(
            "Answer with the report (201) once it is built; false answers 202 at once and "
            "builds it in the background (a province's million firms take minutes)"
        ),
    )


class ChallengeStartedOut(BaseModel):
    shadow_run_id: uuid.UUID
    champion_run_id: uuid.UUID
    status: str = Field(description="`running`: poll the shadow run, then the reports")
    run: str = Field(description="The shadow run (its status says when it is evaluated)")
    reports: str = Field(description="Where the report appears once built")


class ChallengerReportOut(BaseModel):
    id: uuid.UUID
    challenger_version: str
    champion_version: str
    period: int
    shadow_run_id: uuid.UUID
    champion_run_id: uuid.UUID
    created_by: str
    created_at: Any
    report: dict[str, Any]

    @classmethod
    def of(cls, row: Any) -> ChallengerReportOut:
        return cls.model_validate(row, from_attributes=True)


@router.post(
    "/models/{version}/challenger",
    status_code=201,
    response_model=ChallengerReportOut,
    responses={
        **problem_responses(401, 403, 404, 409, 422),
        202: {"model": ChallengeStartedOut, "description": "Started (`wait` false)"},
    },
    summary="Run the version in shadow on a period's facts and compare it with the champion",
    description=(
        "Evaluates the period with this version (a draft may be evaluated only this way) as a "
        "shadow run that is never noticed or published, then stores the report: "
        "distributions, tier migration, validation change where outcomes exist, downstream "
        "impact through credit's and policy's what-ifs. Publishing the version links the "
        "latest report."
    ),
)
async def challenge(
    version: str,
    body: ChallengeIn,
    request: Request,
    session: DbSession,
    principal: GovernmentCaller,
) -> Any:
    who = actor(principal)
    shadow, champion = await service.start_shadow_run(session, version, body.period, who)
    await session.commit()  # the run must exist before the evaluation that fills it
    if not body.wait:
        start_background(
            request.app,
            service.challenge_in_background(
                request.app, shadow.id, champion.id, who, with_downstream=body.downstream
            ),
            f"challenger-{shadow.id}",
        )
        started = ChallengeStartedOut(
            shadow_run_id=shadow.id,
            champion_run_id=champion.id,
            status="running",
            run=f"/v1/evaluations/{shadow.id}",
            reports=f"/v1/models/{version}/challenger-reports",
        )
        return JSONResponse(
            started.model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/evaluations/{shadow.id}"},
        )
    await execute_run(request.app.state.engine, shadow.id)
    shadow = await get_run(session, shadow.id)
    await session.refresh(shadow)
    report = await service.build_report(
        request.app, session, shadow, champion, who, with_downstream=body.downstream
    )
    return ChallengerReportOut.of(report)


@router.get(
    "/models/{version}/challenger-reports",
    response_model=list[ChallengerReportOut],
    summary="This version's challenger reports, newest first",
    responses=problem_responses(401, 403),
)
async def reports(
    version: str, session: DbSession, _: GovernmentOrBank
) -> list[ChallengerReportOut]:
    return [ChallengerReportOut.of(r) for r in await service.reports_of(session, version)]


@router.get(
    "/challenger-reports/{report_id}",
    response_model=ChallengerReportOut,
    responses=problem_responses(401, 403, 404),
)
async def report(
    report_id: uuid.UUID, session: DbSession, _: GovernmentOrBank
) -> ChallengerReportOut:
    return ChallengerReportOut.of(await service.get_report(session, report_id))
