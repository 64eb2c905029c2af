from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ComponentSettings


class ScoringSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore", frozen=True)

    # Largest upload accepted by POST /v1/imports, as sent (a million rows of every known
    # column are ~290 MB as CSV, ~70 MB gzip-compressed).
    max_import_bytes: int = 400 * 1024 * 1024
    # Largest a gzip-compressed import may inflate to (a gzip bomb stops here).
    max_import_inflated_bytes: int = 400 * 1024 * 1024
    # Largest an XLSX file's members may declare they inflate to (openpyxl holds its shared
    # strings in memory), and the most cells its sheet may have.
    max_xlsx_inflated_bytes: int = 200 * 1024 * 1024
    max_xlsx_cells: int = 20_000_000
    # Rows reported back per import (the count is always exact).
    max_reported_errors: int = 1000
    # Publish only runs that were in public notice (or correct one); off: the notice is optional.
    require_notice: bool = False
    # Evidence files of an objection: PDF, PNG or JPEG, each at most this large, this many.
    evidence_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)
    evidence_max_files: int = Field(5, ge=1, le=20)
    # The credit and policy services, asked for the downstream impact of a run (what-if).
    credit_url: str = "http://credit"
    policy_url: str = "http://policy"
    # Seconds a comparison waits for each what-if before reporting it as timed out.
    # Within the gateway's default upstream timeout (10 s), so the comparison itself answers.
    whatif_timeout: float = Field(8.0, gt=0, le=600)
