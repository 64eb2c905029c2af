"""What the policy service's domains share: problem types, raw COPY access."""

from __future__ import annotations

from shared.auth.deps import actor
from shared.db import raw_connection
from shared.errors import Unprocessable
from shared.problems import NoPublishedEvaluation, UnknownEnterprise


class InvalidRule(Unprocessable):
    """The criteria cannot be published (or tried): every problem is listed in `problems`."""

    slug = "invalid-rule"
    title = "The eligibility criteria are not valid"


__all__ = [
    "InvalidRule",
    "NoPublishedEvaluation",
    "UnknownEnterprise",
    "actor",
    "raw_connection",
]
