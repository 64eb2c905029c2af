from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devtools.idp.callbacks import AllowedCallback


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
    # Where a login may send the browser back to, with its ssotoken: each entry an exact
    # origin (scheme, host and port) and a path prefix, e.g.
    # `["http://127.0.0.1:8000/v1/auth/esso/callback"]`. Anything else is refused.
    allowed_callbacks: list[str] = [
        "http://127.0.0.1:8000/v1/auth/esso/callback",
        "http://localhost:8000/v1/auth/esso/callback",
    ]
    # `POST /simulate-login` issues an ssotoken for any demo enterprise without the login
    # page: for scripts, tests and the demo season of `make run` only. Off unless enabled.
    simulate_login: bool = False

    @field_validator("allowed_callbacks")
    @classmethod
    def _parse_callbacks(cls, value: list[str]) -> list[str]:
        for entry in value:
            AllowedCallback.parse(entry)  # a malformed entry fails at start
        return value

    @model_validator(mode="after")
    def _never_production(self) -> Self:
        if self.environment == "production":
            raise ValueError(
                "the development identity provider refuses to run in production: "
                "point the gateway at the real enterprise-code provider instead"
            )
        return self

    def callbacks(self) -> list[AllowedCallback]:
        return [AllowedCallback.parse(entry) for entry in self.allowed_callbacks]
