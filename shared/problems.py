"""Problem types more than one service answers with, defined once so that a client sees one
`type` and one title for the same situation whichever service it asked."""

from __future__ import annotations

import httpx

from shared.errors import Conflict, NotFound, UpstreamError


class UnknownEnterprise(NotFound):
    slug = "unknown-enterprise"
    title = "Enterprise not in the published evaluation"


class NoPublishedEvaluation(Conflict):
    slug = "no-published-evaluation"
    title = "No published evaluation yet"


def raise_for_scoring_run(exc: UpstreamError, run_id: object) -> None:
    """When scoring refused a run's scores: the run unknown there (404) or without scores yet
    (409) become this service's own answer. Returns for any other failure, which the caller
    re-raises as it is."""
    cause = exc.__cause__
    status = cause.response.status_code if isinstance(cause, httpx.HTTPStatusError) else None
    if status == 404:
        raise NotFound(f"Scoring has no evaluation {run_id}") from exc
    if status == 409:
        raise Conflict(f"Scoring evaluation {run_id} has no scores (yet)") from exc
