from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ComponentSettings


class ScoringSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore", frozen=True)

    # Largest upload accepted by POST /v1/imports.
    max_import_bytes: int = 50 * 1024 * 1024
    # Rows reported back per import (the count is always exact).
    max_reported_errors: int = 1000
