from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devtools.idp.callbacks import AllowedCallback, parse_origin


class OidcClient(BaseModel):
    """A relying party registered with the OpenID Connect provider (the web portal)."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1, max_length=128)
    secret: SecretStr
    # Compared exactly, as OpenID Connect requires: no prefixes, no patterns.
    redirect_uris: list[str] = Field(min_length=1)
    name: str | None = None

    @field_validator("redirect_uris")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for uri in value:
            if parse_origin(uri) is None:
                raise ValueError(f"not a plain absolute http(s) redirect URI: {uri!r}")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("an OIDC client secret needs at least 16 characters")
        return value


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

    # The OpenID Connect provider for staff (devtools.idp.oidc). Its issuer is the URL the
    # browser and the relying parties reach it at; ID tokens carry it as `iss`.
    issuer: str = "http://127.0.0.1:8009"
    # Registered relying parties, JSON: [{"client_id", "secret", "redirect_uris", "name"}].
    oidc_clients: list[OidcClient] = []
    # The ID-token signing key set (ES256), made on first start.
    oidc_key_file: Path = Path("var/keys/idp-oidc.json")
    # Lifetimes, seconds: an authorization code, an ID token, a userinfo access token.
    code_ttl: int = Field(60, ge=1, le=600)
    id_token_ttl: int = Field(300, ge=1, le=3600)
    access_token_ttl: int = Field(300, ge=1, le=3600)

    @field_validator("allowed_callbacks")
    @classmethod
    def _parse_callbacks(cls, value: list[str]) -> list[str]:
        for entry in value:
            AllowedCallback.parse(entry)  # a malformed entry fails at start
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        parsed = parse_origin(value)
        if parsed is None or urlsplit(value).query:
            raise ValueError(f"issuer must be a plain http(s) URL: {value!r}")
        return value.rstrip("/")

    @field_validator("oidc_clients")
    @classmethod
    def _distinct_clients(cls, value: list[OidcClient]) -> list[OidcClient]:
        ids = [c.client_id for c in value]
        if len(ids) != len(set(ids)):
            raise ValueError("oidc_clients has a client_id twice")
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
