from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Basis(StrEnum):
    """How the consent was given."""

    APPLICATION = "application"  # by applying: scoped to that application
    EXPLICIT = "explicit"  # on its own: until withdrawn (or its chosen expiry)


class ConsentStatus(StrEnum):
    IN_FORCE = "in_force"
    ENDED = "ended"  # withdrawn, or its application or loan ended
    EXPIRED = "expired"  # its `expires_at` has passed


class EndReason(StrEnum):
    WITHDRAWN = "withdrawn"
    APPLICATION_WITHDRAWN = "application_withdrawn"
    APPLICATION_REJECTED = "application_rejected"
    LOAN_CLOSED = "loan_closed"
    EXPIRED = "expired"


class Shared(StrEnum):
    """What a bank may see under a consent (`GET /v1/enterprises/{uscc}/approved-amounts`)."""

    SCORE = "score"  # the current published score: total, rank, tier, percentile, stage
    PRE_APPROVED_AMOUNTS = "pre_approved_amounts"  # the lines with this bank's products


# The applications made to a bank are its own records whatever the consent: the bank keeps
# what it decided on (with the score it was shown then), not the enterprise's later data.
SCOPE = [Shared.SCORE, Shared.PRE_APPROVED_AMOUNTS]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bank_id: str = Field(min_length=1, max_length=64)
    expires_at: AwareDatetime | None = Field(
        None,
        description="When the consent ends by itself (with a time zone); "
        "omitted: until withdrawn. Granting again replaces it.",
    )


class ConsentOut(BaseModel):
    id: uuid.UUID
    uscc: str
    bank_id: str
    bank_name: str
    basis: Basis
    application_id: uuid.UUID | None = Field(
        description="The application an `application` consent is scoped to"
    )
    scope: list[Shared] = Field(description="What the bank may see while the consent is in force")
    status: ConsentStatus
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None = Field(
        description="When it ends by itself at the latest; null: only when withdrawn or ended"
    )
    ended_at: datetime | None
    end_reason: EndReason | None
    summary: str = Field(description="The consent in plain words: who sees what, why, until when")
    summary_zh: str = Field(description="The same, in Chinese, for the mini-app")
    enterprise_name: str | None = Field(
        None, description="For a bank's list: the enterprise's name in the current evaluation"
    )
