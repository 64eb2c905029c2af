"""Gateway settings (env prefix `GATEWAY_`).

Production points the gateway at the real enterprise-code provider by configuration alone:
`GATEWAY_ESSO_LOGIN_URL=https://esso.zjzwfw.gov.cn/opensso/spsaehandler/metaAlias/sp`,
`GATEWAY_ESSO_QUERY_URL=https://ssoapi.zjzwfw.gov.cn/rest/user/query` and the project id and
secret the province assigns.

Staff (government staff and bank officers) sign in as persons at their organisation's
OpenID Connect provider, through a relying party such as the web portal, which exchanges the
ID token here (`GATEWAY_STAFF_PROVIDERS`, see `StaffProvider` and docs/gateway.md).

In production the gateway refuses to start while its ESSO endpoints or a staff provider point
at the development identity provider (plain http, a loopback address, or the `idp` host of
compose and the Kubernetes base): that provider signs anyone in as anyone. Placeholder
secrets are refused by the shared settings base.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.components import UPSTREAMS as UPSTREAMS
from shared.settings import ComponentSettings, looks_like_placeholder

DEVELOPMENT_PROJECT_ID = "innovation-points-dev"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def development_provider_url(url: str) -> bool:
    """Whether an ESSO or staff-provider endpoint can only be the development provider: a
    real one is served over https from a public name, never from loopback or compose's and
    the cluster's `idp`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return (
        parts.scheme != "https"
        or host in _LOOPBACK
        or host.startswith("127.")
        or host == "idp"
        or (host.startswith("idp.") and ".svc" in host)
    )


# Signature algorithms an ID token may use: asymmetric only, so neither `none` nor an HMAC
# keyed with a public key can ever be accepted.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ORG = re.compile(
    r"^(government|bank:[a-z0-9][a-z0-9-]{0,63}|claim:[A-Za-z_][A-Za-z0-9_.-]{0,63})$"
)
BANK_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class StaffProvider(BaseModel):
    """An organisation's OpenID Connect provider whose ID tokens sign staff in.

    `org` says which organisation its people act for: `government`, `bank:<bank_id>`, or
    `claim:<claim>`, where the claim holds `government` or a bank id (the development
    provider's `org`); `orgs`, when set, lists the values such a claim may take. The role
    comes from `role_claim` (a string or a list): `operator` when it holds one of
    `operator_values`, else `viewer`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Short and stable: it is part of the person's principal (`staff:<name>:<subject>`).
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    issuer: str = Field(min_length=1, max_length=512)
    jwks_url: str = Field(min_length=1, max_length=1024)
    # The `aud` the provider puts in ID tokens: the relying party's client id there.
    audience: str = Field(min_length=1, max_length=256)
    org: str
    orgs: list[str] | None = None
    role_claim: str = "roles"
    operator_values: list[str] = Field(default_factory=lambda: ["operator"])
    algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"])

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        if not _ORG.match(value):
            raise ValueError("org is government, bank:<bank_id> or claim:<claim>")
        return value

    @field_validator("orgs")
    @classmethod
    def _orgs(cls, value: list[str] | None) -> list[str] | None:
        for org in value or []:
            if org != "government" and not BANK_ID.match(org):
                raise ValueError(f"orgs: {org!r} is neither government nor a bank id")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        refused = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not value:
            raise ValueError(f"algorithms must be asymmetric JWS algorithms; refused {refused}")
        return value


class GatewaySettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    # The issuer's private key set (ES256); created on first start in development. The services
    # verify against `/.well-known/jwks.json` (or this same file in development).
    key_file: Path = Path("var/keys/issuer.json")
    # Where browsers and the identity provider reach us: the ESSO callback is built from it.
    public_url: str = "http://127.0.0.1:8000"

    # Upstream base URLs (the service's root; `/v1/scoring/X` goes to `{scoring_url}/v1/X`),
    # one `<name>_url` per upstream of the component registry (shared/components.py).
    scoring_url: str = "http://scoring"
    credit_url: str = "http://credit"
    policy_url: str = "http://policy"
    upstream_timeout: float = 10.0
    upstream_connect_timeout: float = 1.0
    # Per-upstream read timeouts, e.g. GATEWAY_UPSTREAM_TIMEOUTS='{"scoring": 30}'.
    upstream_timeouts: dict[str, float] = Field(default_factory=dict)
    upstream_max_connections: int = 200
    # The proxy's client: "http1" (the default: its own keep-alive client on httptools, see
    # gateway/proxy/http1.py), "aiohttp" (aiohttp's ClientSession) or httpx's own pool, kept
    # selectable so the benchmark can show the difference on the machine at hand.
    upstream_transport: Literal["http1", "aiohttp", "httpx"] = "http1"
    # Extra attempts for idempotent methods after a connection-level failure.
    upstream_retries: int = 1
    max_body_bytes: int = 64 * 1024 * 1024
    # A multipart upload to POST /v1/scoring/imports only: a million enterprises as CSV are
    # ~290 MB (~70 MB as .csv.gz); the scoring service bounds the file again, inflated too.
    max_import_body_bytes: int = 420 * 1024 * 1024
    # Seconds the scoring service has to read and load such an upload.
    import_timeout: float = 180.0
    breaker_threshold: int = 5
    breaker_ttl: float = 15.0

    # Lifetimes, seconds.
    internal_token_ttl: int = 60
    # Internal tokens a service client gets at the token endpoint. Services do not check
    # revocations, so this is how long a rotated or disabled service client's tokens last.
    service_token_ttl: int = 60
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    client_token_ttl: int = 600
    # How often revocations made by other gateway replicas are picked up.
    revocation_poll_seconds: float = 2.0

    # Enterprise-code (ESSO) login; the defaults point at the development provider.
    esso_login_url: str = "http://127.0.0.1:8009/opensso/spsaehandler/metaAlias/sp"
    esso_query_url: str = "http://127.0.0.1:8009/rest/user/query"
    esso_project_id: str = DEVELOPMENT_PROJECT_ID
    esso_project_secret: SecretStr = SecretStr("dev-secret")
    esso_min_real_level: int = 3
    esso_timeout: float = 5.0
    # Where the browser lands after login when the login link gave no `goto`.
    esso_default_goto: str = "/v1/me"
    # Secure cookies (by default when public_url is https) are named with the `__Host-`
    # prefix, Path=/ and no Domain: a sibling host cannot set or shadow them.
    cookie_secure: bool | None = None

    # Client secrets are stored as HMAC-SHA256 under this key (at least 32 characters; keep
    # it in a secret store). Unset in development: made once under var_dir/keys.
    client_secret_hmac_key: SecretStr | None = None

    # Rate limits (the `limits` library's notation, ";" between several), per principal: an
    # enterprise by its USCC, a client by its client id. Anonymous calls to the services are
    # refused before any limit; the token and login endpoints count per client IP (slows
    # secret guessing).
    rate_limit_storage: str = "memory://"
    rate_limit_enterprise: str = "20/second;600/minute"
    rate_limit_client: str = "200/second"
    rate_limit_auth: str = "60/minute"
    # Failed client authentications per client id: beyond this the id is locked out, except
    # from addresses where that client authenticated in the last day (see docs/gateway.md).
    client_failure_limit: str = "10/5minutes"

    # Staff sign-in: the OpenID Connect providers whose ID tokens a `portal` client may
    # exchange at the token endpoint (RFC 8693), JSON: [{"name", "issuer", "jwks_url",
    # "audience", "org", "orgs", "role_claim", "operator_values", "algorithms"}].
    staff_providers: list[StaffProvider] = Field(default_factory=list)
    # An ID token older than this (its `iat`) is refused: it is exchanged right after login.
    staff_id_token_max_age: int = Field(600, ge=30, le=3600)
    # A staff session ends this long after sign-in, refreshes or not; then the person signs
    # in at their provider again, which is where a departure or a new role takes effect.
    staff_session_ttl: int = Field(12 * 3600, ge=300)

    # The mini-app dashboard: all parts must come back within this many seconds.
    dashboard_deadline: float = 2.0
    dashboard_top_offers: int = 3

    @model_validator(mode="after")
    def _check_gateway(self) -> Self:
        for spec in (
            self.rate_limit_enterprise,
            self.rate_limit_client,
            self.rate_limit_auth,
            self.client_failure_limit,
        ):
            parse_many(spec)  # a typo fails at start, not on the first request
        if not self.esso_min_real_level or not 1 <= self.esso_min_real_level <= 4:
            raise ValueError("esso_min_real_level must be between 1 and 4")
        unknown = set(self.upstream_timeouts) - set(UPSTREAMS)
        if unknown:
            raise ValueError(f"upstream_timeouts names unknown upstreams: {sorted(unknown)}")
        names = [p.name for p in self.staff_providers]
        issuers = [p.issuer for p in self.staff_providers]
        if len(set(names)) != len(names) or len(set(issuers)) != len(issuers):
            raise ValueError("staff_providers: each name and each issuer once")
        if self.environment == "production":
            self._check_production()
        return self

    def _check_production(self) -> None:
        for name in ("esso_login_url", "esso_query_url"):
            url: str = getattr(self, name)
            if development_provider_url(url):
                raise ValueError(
                    f"{name} ({url}) points at the development identity provider, which signs "
                    "anyone in as any enterprise: set the real enterprise-code provider's "
                    "https endpoints for production"
                )
        for provider in self.staff_providers:
            for value in (provider.issuer, provider.jwks_url, provider.audience):
                if looks_like_placeholder(value):
                    raise ValueError(
                        f"staff provider {provider.name}: {value!r} is a placeholder; set the "
                        "provider's real issuer, JWKS address and the portal's client id there"
                    )
            for url in (provider.issuer, provider.jwks_url):
                if development_provider_url(url):
                    raise ValueError(
                        f"staff provider {provider.name} ({url}) points at the development "
                        "identity provider, which signs anyone in as any staff member: set "
                        "the organisation's real OpenID Connect provider (https) for production"
                    )
        project = self.esso_project_id
        if project == DEVELOPMENT_PROJECT_ID or looks_like_placeholder(project):
            raise ValueError(
                f"esso_project_id {project!r} is a placeholder; set the id the province assigned"
            )
        key = self.client_secret_hmac_key
        if key is None or len(key.get_secret_value()) < 32:
            raise ValueError("production needs client_secret_hmac_key, at least 32 characters")

    def upstream_url(self, name: str) -> str:
        url: str = getattr(self, f"{name}_url")
        return url.rstrip("/")

    def read_timeout(self, name: str) -> float:
        return self.upstream_timeouts.get(name, self.upstream_timeout)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.public_url.startswith("https://")

    def cookie(self, name: str, path: str) -> tuple[str, str]:
        """A browser cookie's name and path: `__Host-<name>` at `/` where cookies are secure
        (the prefix requires both), else the plain name at its own path (plain-http
        development, where browsers refuse the prefix)."""
        if self.secure_cookies:
            return f"__Host-{name}", "/"
        return name, path
