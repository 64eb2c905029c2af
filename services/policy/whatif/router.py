"""What-if (模拟测算): pool eligibility with a scoring run, computed and not stored."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.policy.matching.sync import ScoringClient
from services.policy.settings import PolicySettings
from services.policy.whatif import service
from services.policy.whatif.schemas import EvaluationWhatIf, EvaluationWhatIfOut
from shared.auth.deps import GovernmentOrServiceCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/what-if", tags=["what-if"], route_class=CommittingRoute)


@router.post(
    "/evaluation",
    response_model=EvaluationWhatIfOut,
    summary="Pool eligibility a scoring run would give, against the matches now (nothing stored)",
    description=(
        "For the government and the scoring service (its comparison of a run before "
        "publication). Same rules and fact typing as matching on publication."
    ),
    responses=problem_responses(401, 403, 404, 409, 422, 502),
)
async def evaluation_what_if(
    body: EvaluationWhatIf, request: Request, session: DbSession, _: GovernmentOrServiceCaller
) -> EvaluationWhatIfOut:
    settings: PolicySettings = request.app.state.settings
    return await service.evaluation_what_if(
        session, ScoringClient(request.app), body, settings.near_max
    )
