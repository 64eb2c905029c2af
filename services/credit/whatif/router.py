"""What-if (模拟测算): the lines a scoring run would give, computed and not stored."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.credit.evaluations.sync import ScoringClient
from services.credit.whatif import service
from services.credit.whatif.schemas import EvaluationWhatIf, EvaluationWhatIfOut
from shared.auth.deps import GovernmentOrServiceCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/what-if", tags=["what-if"], route_class=CommittingRoute)


@router.post(
    "/evaluation",
    response_model=EvaluationWhatIfOut,
    summary="The lines a scoring run would give, against the lines served now (nothing stored)",
    description=(
        "For the government and the scoring service (its comparison of a run before "
        "publication). Same rules as the recomputation on publication; nothing is written."
    ),
    responses=problem_responses(401, 403, 404, 409, 422, 502),
)
async def evaluation_what_if(
    body: EvaluationWhatIf, request: Request, session: DbSession, _: GovernmentOrServiceCaller
) -> EvaluationWhatIfOut:
    return await service.evaluation_what_if(session, ScoringClient(request.app), body)
