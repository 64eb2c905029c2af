"""Settings base for every component.

Each component subclasses `ComponentSettings` with its own env prefix (`SCORING_`, `CREDIT_`,
`POLICY_`, `GATEWAY_`, `IDP_`); unknown variables are ignored. Outside development a setting
that still holds a placeholder secret refuses to start, so a demo value can never reach
production by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Values that mean "nobody set this": refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "dev-secret", "demo"}
)

# Where local state (embedded database, keys, demo credentials) lives by default.
VAR_DIR = Path("var")


class ComponentSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None, frozen=True)

    environment: Environment = "development"
    # None means: start the embedded PostgreSQL under var/ (development only).
    database_url: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # The internal-token issuer (the gateway) and where its public keys are.
    token_issuer: str = "innovation-points-gateway"
    jwks_url: str | None = None
    jwks_file: Path | None = None
    # How this component gets tokens for calling other services (client credentials at the
    # gateway's token endpoint). Unset for components that call no one.
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    log_json: bool | None = None
    log_level: str = "INFO"
    var_dir: Path = VAR_DIR

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Self:
        if self.environment == "development":
            return self
        for name, value in self:
            if isinstance(value, SecretStr) and value.get_secret_value() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} holds a placeholder secret; set a real one for {self.environment}"
                )
        if self.environment == "production" and self.database_url is None:
            raise ValueError(
                "production needs database_url: the embedded PostgreSQL is for development"
            )
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment == "production"
