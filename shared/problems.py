"""Problem types more than one service answers with, defined once so that a client sees one
`type` and one title for the same situation whichever service it asked."""

from __future__ import annotations

from shared.errors import Conflict, NotFound


class UnknownEnterprise(NotFound):
    slug = "unknown-enterprise"
    title = "Enterprise not in the published evaluation"


class NoPublishedEvaluation(Conflict):
    slug = "no-published-evaluation"
    title = "No published evaluation yet"
