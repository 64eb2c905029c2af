"""Portal settings (env prefix `PORTAL_`).

Production sets `PORTAL_PUBLIC_URL` (https), `PORTAL_GATEWAY_URL`, `PORTAL_ESSO_LOGIN_URL`
(the province's enterprise-code login page) and `PORTAL_SESSION_KEYS` (one or more Fernet
keys, comma-separated, the first encrypts: rotation adds a new key in front).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ComponentSettings

# Asymmetric signatures only: `none` and HMAC (a key the client shares) never sign an ID token
# the portal accepts.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class StaffProvider(BaseModel):
    """An OpenID Connect provider staff sign in at (浙政钉, a bank's own): the portal is its
    relying party, registered with `client_id` and the callback `<public_url>/auth/staff/callback`.
    The gateway must list the same issuer in GATEWAY_STAFF_PROVIDERS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    label: str = Field(min_length=1, max_length=100)
    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretStr | None = None
    scope: str = "openid profile"
    algorithms: tuple[str, ...] = ("ES256", "RS256")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not set(value) <= ASYMMETRIC:
            raise ValueError(f"algorithms must be asymmetric ones of {sorted(ASYMMETRIC)}")
        return value

    @field_validator("scope")
    @classmethod
    def _openid(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("scope must contain openid")
        return value


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class PortalSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore", frozen=True)

    # Where browsers reach the portal: the ESSO callback and the same-origin check use it.
    public_url: str = "http://127.0.0.1:8010"
    # The gateway's public API: the only way the portal reaches the platform.
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_timeout: float = 10.0
    # The portal's client at the gateway (kind `portal`): it signs staff in (token exchange,
    # refresh with HTTP Basic) and makes the portal a trusted forwarder at the login
    # endpoints, whose per-address limit then counts each browser rather than the portal
    # (docs/gateway.md).
    gateway_client_id: str | None = None
    gateway_client_secret: SecretStr | None = None
    # The enterprise-code (ESSO) login page; the development provider by default.
    esso_login_url: str = "http://127.0.0.1:8009/opensso/spsaehandler/metaAlias/sp"

    # Fernet keys for the gateway tokens kept in sessions (comma-separated, first encrypts).
    # Unset in development: a key is made once under var/keys/.
    session_keys: SecretStr | None = None
    session_key_file: Path = Path("var/keys/portal-session.key")
    # Idle and absolute lifetimes of a portal session, seconds.
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 3600
    # How often expired sessions are deleted; 0 turns the sweeper off (tests sweep by hand).
    session_sweep_seconds: float = 300.0
    # None: Secure cookies everywhere but development. A Secure cookie is named `__Host-…`.
    cookie_secure: bool | None = None

    # A gateway access token this close to expiry is refreshed before use, seconds.
    refresh_margin_seconds: int = 30
    # Read-only reference data (indicator names, banks, cohort statistics) kept this long.
    reference_cache_seconds: float = 300.0

    # Staff sign-in (JSON list of StaffProvider); empty: the staff page says none is set up.
    staff_providers: list[StaffProvider] = Field(default_factory=list)
    # How long a started staff sign-in may take at the provider, seconds.
    staff_login_seconds: int = 600
    # A provider's discovery document and keys are kept this long, seconds.
    oidc_cache_seconds: float = 300.0

    @model_validator(mode="after")
    def _check_staff(self) -> Self:
        names = [p.name for p in self.staff_providers]
        if len(set(names)) != len(names):
            raise ValueError("staff_providers have duplicate names")
        has_client = bool(self.gateway_client_id and self.gateway_client_secret)
        if self.staff_providers and not has_client and self.environment != "development":
            raise ValueError(
                "staff_providers need gateway_client_id and gateway_client_secret (the portal's "
                "gateway client exchanges the ID tokens)"
            )
        if self.environment == "production":
            for p in self.staff_providers:
                if not p.issuer.startswith("https://"):
                    raise ValueError(f"staff provider {p.name}: issuer must be https in production")
        return self

    @model_validator(mode="after")
    def _check_portal(self) -> Self:
        if self.environment == "development":
            return self
        if self.session_keys is None:
            raise ValueError(
                "session_keys is required outside development (Fernet keys, comma-separated)"
            )
        if self.environment == "production" and not self.public_url.startswith("https://"):
            raise ValueError("public_url must be https in production")
        return self

    def gateway_client(self) -> tuple[str, str] | None:
        if self.gateway_client_id is None or self.gateway_client_secret is None:
            return None
        return self.gateway_client_id, self.gateway_client_secret.get_secret_value()

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment != "development"

    @property
    def public_origin(self) -> str:
        return origin_of(self.public_url)

    @property
    def staff_callback_url(self) -> str:
        return self.public_url.rstrip("/") + "/auth/staff/callback"

    def staff_provider(self, name: str) -> StaffProvider | None:
        return next((p for p in self.staff_providers if p.name == name), None)

    @property
    def esso_origin(self) -> str:
        return origin_of(self.esso_login_url)
