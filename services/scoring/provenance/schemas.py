"""Sources and value histories as the API shows them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SourceOut(BaseModel):
    """Where a value came from."""

    id: int
    kind: Literal["import", "correction", "system"]
    system: str | None = Field(description="The source system, for kind system")
    precedence: int
    period: int | None
    as_of: date | None = Field(description="The date the values refer to")
    import_id: uuid.UUID | None
    objection_id: uuid.UUID | None = Field(description="For a correction: the objection")
    file_name: str | None
    file_sha256: str | None
    created_by: str | None = Field(description="Who recorded it (shown to the government)")
    created_at: datetime


class FactChangeOut(BaseModel):
    old_value: Any
    new_value: Any
    old_source: SourceOut | None
    source: SourceOut | None
    changed_at: datetime


class ValueHistory(BaseModel):
    """One value now, with its source, and its changes newest first (a page of them)."""

    uscc: str
    period: int
    indicator: str
    value: Any
    source: SourceOut | None
    changes: list[FactChangeOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
