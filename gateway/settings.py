"""Gateway settings (env prefix `GATEWAY_`).

Production points the gateway at the real enterprise-code provider by configuration alone:
`GATEWAY_ESSO_LOGIN_URL=https://esso.zjzwfw.gov.cn/opensso/spsaehandler/metaAlias/sp`,
`GATEWAY_ESSO_QUERY_URL=https://ssoapi.zjzwfw.gov.cn/rest/user/query` and the project id and
secret the province assigns.

In production the gateway refuses to start while its ESSO endpoints point at the development
identity provider (plain http, a loopback address, or the `idp` host of compose and the
Kubernetes base): that provider signs anyone in as any enterprise. Placeholder secrets are
refused by the shared settings base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ComponentSettings, looks_like_placeholder

UPSTREAMS = ("scoring", "credit", "policy")
DEVELOPMENT_PROJECT_ID = "innovation-points-dev"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def development_provider_url(url: str) -> bool:
    """Whether an ESSO endpoint can only be the development provider: the real one is served
    over https from a public name, never from loopback or compose's and the cluster's `idp`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return (
        parts.scheme != "https"
        or host in _LOOPBACK
        or host.startswith("127.")
        or host == "idp"
        or (host.startswith("idp.") and ".svc" in host)
    )


class GatewaySettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    # The issuer's private key set (ES256); created on first start in development. The services
    # verify against `/.well-known/jwks.json` (or this same file in development).
    key_file: Path = Path("var/keys/issuer.json")
    # Where browsers and the identity provider reach us: the ESSO callback is built from it.
    public_url: str = "http://127.0.0.1:8000"

    # Upstream base URLs (the service's root; `/v1/scoring/X` goes to `{scoring_url}/v1/X`).
    scoring_url: str = "http://scoring"
    credit_url: str = "http://credit"
    policy_url: str = "http://policy"
    upstream_timeout: float = 10.0
    upstream_connect_timeout: float = 1.0
    # Per-upstream read timeouts, e.g. GATEWAY_UPSTREAM_TIMEOUTS='{"scoring": 30}'.
    upstream_timeouts: dict[str, float] = Field(default_factory=dict)
    upstream_max_connections: int = 200
    # "aiohttp" (the default) or httpx's own pool, kept selectable so the benchmark can show
    # the difference (encode/httpx issue 3215) on the machine at hand.
    upstream_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    # Extra attempts for idempotent methods after a connection-level failure.
    upstream_retries: int = 1
    max_body_bytes: int = 64 * 1024 * 1024
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
