"""The application lifecycle, after Apache Fineract's loan states.

submitted -> under_review -> approved | rejected | withdrawn; approved -> disbursed -> closed.
Fineract lets the applicant withdraw until disbursement, and so do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.auth.principal import PrincipalKind


class Status(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    DISBURSED = "disbursed"
    CLOSED = "closed"


class Action(StrEnum):
    REVIEW = "review"
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"
    DISBURSE = "disburse"
    CLOSE = "close"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[Status]
    target: Status
    actor: PrincipalKind


_DECIDABLE = frozenset({Status.SUBMITTED, Status.UNDER_REVIEW})

TRANSITIONS: dict[Action, Transition] = {
    Action.REVIEW: Transition(
        frozenset({Status.SUBMITTED}), Status.UNDER_REVIEW, PrincipalKind.BANK
    ),
    Action.APPROVE: Transition(_DECIDABLE, Status.APPROVED, PrincipalKind.BANK),
    Action.REJECT: Transition(_DECIDABLE, Status.REJECTED, PrincipalKind.BANK),
    Action.WITHDRAW: Transition(
        frozenset({Status.SUBMITTED, Status.UNDER_REVIEW, Status.APPROVED}),
        Status.WITHDRAWN,
        PrincipalKind.ENTERPRISE,
    ),
    Action.DISBURSE: Transition(frozenset({Status.APPROVED}), Status.DISBURSED, PrincipalKind.BANK),
    Action.CLOSE: Transition(frozenset({Status.DISBURSED}), Status.CLOSED, PrincipalKind.BANK),
}

TERMINAL = frozenset({Status.REJECTED, Status.WITHDRAWN, Status.CLOSED})
