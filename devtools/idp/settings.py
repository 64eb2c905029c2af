from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IdpSettings(BaseSettings):
    """Development identity provider (env prefix `IDP_`). Never for production."""

    model_config = SettingsConfigDict(env_prefix="IDP_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    # Must match the gateway's GATEWAY_ESSO_PROJECT_ID / GATEWAY_ESSO_PROJECT_SECRET.
    project_id: str = "innovation-points-dev"
    project_secret: SecretStr = SecretStr("dev-secret")
    # [{"uscc", "name", "legal_rep"}], written by the demo loader.
    enterprises_file: Path = Path("var/demo-enterprises.json")
    # How long an ssotoken may wait for its user query, seconds.
    token_ttl: int = 120
    default_real_level: int = 3
    # Where a login may send the browser back to (the gateway's callback).
    allowed_callback_prefixes: list[str] = [
        "http://127.0.0.1:",
        "http://localhost:",
        "http://gateway/",
    ]

    @model_validator(mode="after")
    def _never_production(self) -> Self:
        if self.environment == "production":
            raise ValueError(
                "the development identity provider refuses to run in production: "
                "point the gateway at the real enterprise-code provider instead"
            )
        return self
