"""An import as the API shows it: the file, its counts and every problem found."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from services.scoring.models import Import


class ImportOut(BaseModel):
    id: uuid.UUID
    period: int | None
    filename: str
    file_format: str
    file_sha256: str
    status: str
    rows_total: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    error_count: int
    errors: list[dict[str, Any]]
    values_kept: int
    as_of: date | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, imp: Import) -> ImportOut:
        return cls.model_validate(imp, from_attributes=True)
