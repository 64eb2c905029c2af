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

# Values that mean "nobody set this": refused outside development. Whole values, and
# fragments that no real secret contains (compose's default was `compose-esso-secret-
# change-me`, which the whole-value list did not know).
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "dev-secret", "demo"}
)
PLACEHOLDER_FRAGMENTS = (
    "change-me",
    "changeme",
    "change_me",
    "changethis",
    "example",
    "placeholder",
    "replace-with",
    "replace-me",
)
PLACEHOLDER_PREFIXES = ("dev-", "dev_", "demo-", "demo_")


def looks_like_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return (
        lowered in PLACEHOLDER_SECRETS
        or any(f in lowered for f in PLACEHOLDER_FRAGMENTS)
        or lowered.startswith(PLACEHOLDER_PREFIXES)
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
    # Prometheus metrics are served on this port alone, never on the public one; unset
    # means not served. The address defaults to loopback: a container sets 0.0.0.0.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Self:
        if self.environment == "development":
            return self
        for name, value in self:
            if isinstance(value, SecretStr) and looks_like_placeholder(value.get_secret_value()):
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
