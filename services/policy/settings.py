from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ComponentSettings


class PolicySettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="POLICY_", extra="ignore", frozen=True)

    # The scoring service: its event feed and the published scores with their facts.
    scoring_url: str = "http://scoring"
    # Seconds between polls of the scoring event feed; 0 leaves the background consumer off
    # (tests call `sync_evaluations` themselves).
    sync_interval: float = 10.0
    events_batch: int = Field(100, ge=1, le=500)
    scores_page_size: int = Field(5000, ge=1, le=5000)
    # A failing rule is "near" when at most this many closeable criteria stand in its way.
    near_max: int = Field(2, ge=1, le=10)
