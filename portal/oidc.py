"""Staff sign-in at an OpenID Connect provider: the portal as a relying party.

authlib's `AsyncOAuth2Client` builds the authorization request (code flow, PKCE S256, `state`,
`nonce`) and redeems the code; joserfc checks the ID token's signature against the provider's
JWKS and its claims (`iss`, `aud`, `exp`, `nonce`). What the browser must not be able to
change stays on the server: a started sign-in is a row keyed by the digest of a random id the
browser holds in a short-lived cookie, with the state, the nonce and the (encrypted) PKCE
verifier; the callback finds it, uses it once and deletes it.

The discovery document and the keys are cached (`oidc_cache_seconds`); an ID token signed by
a key id the cache does not know refetches the keys, at most every ten seconds, so a key
rotation at the provider costs one fetch and a forged key id cannot make the portal hammer it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from cryptography.fernet import MultiFernet
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.models import StaffLoginAttempt
from portal.sessions import digest
from portal.settings import PortalSettings, StaffProvider
from shared.http import KEEPALIVE_EXPIRY

log = structlog.get_logger("portal.oidc")

LEEWAY_SECONDS = 5
KEY_REFETCH_SECONDS = 10.0


class SignInRefused(Exception):
    """The sign-in cannot complete; `reason` is for the log, the person sees a page."""

    def __init__(self, reason: str, *, status: int = 400, slug: str = "staff-login-refused"):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.slug = slug


def unreachable(reason: str) -> SignInRefused:
    return SignInRefused(reason, status=503, slug="staff-provider-unavailable")


@dataclass
class Started:
    """A sign-in to send the browser off with: the cookie value and the provider's URL."""

    cookie: str
    url: str


@dataclass
class Attempt:
    provider: StaffProvider
    state: str
    nonce: str
    verifier: str


@dataclass
class _Cached:
    value: dict[str, Any]
    at: float


class StaffOidc:
    def __init__(
        self,
        settings: PortalSettings,
        maker: async_sessionmaker[AsyncSession],
        cipher: MultiFernet,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.maker = maker
        self.cipher = cipher
        self.transport = transport
        self.http = httpx.AsyncClient(
            transport=transport,
            timeout=10.0,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),  # see shared.http
        )
        self._metadata: dict[str, _Cached] = {}
        self._keys: dict[str, _Cached] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    def _client(self, provider: StaffProvider) -> AsyncOAuth2Client:
        secret = provider.client_secret.get_secret_value() if provider.client_secret else None
        return AsyncOAuth2Client(
            provider.client_id,
            secret,
            scope=provider.scope,
            redirect_uri=self.settings.staff_callback_url,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            transport=self.transport,
            timeout=10.0,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise unreachable(f"{url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise unreachable(f"{url}: {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise unreachable(f"{url}: not JSON") from exc
        if not isinstance(body, dict):
            raise unreachable(f"{url}: not an object")
        return body

    async def metadata(self, provider: StaffProvider) -> dict[str, Any]:
        cached = self._metadata.get(provider.name)
        if cached is not None and time.monotonic() - cached.at < self.settings.oidc_cache_seconds:
            return cached.value
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        body = await self._get_json(url)
        # OpenID Connect Discovery 4.3: the document must name exactly the issuer asked for.
        if body.get("issuer") != provider.issuer:
            raise unreachable(f"discovery names issuer {body.get('issuer')!r}")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(body.get(key), str):
                raise unreachable(f"discovery lacks {key}")
        self._metadata[provider.name] = _Cached(body, time.monotonic())
        return body

    async def _key_set(self, provider: StaffProvider, *, refetch: bool) -> KeySet:
        cached = self._keys.get(provider.name)
        age = time.monotonic() - cached.at if cached else None
        stale = age is None or age >= self.settings.oidc_cache_seconds
        if cached is None or stale or (refetch and age is not None and age >= KEY_REFETCH_SECONDS):
            meta = await self.metadata(provider)
            cached = _Cached(await self._get_json(meta["jwks_uri"]), time.monotonic())
            self._keys[provider.name] = cached
        try:
            return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise unreachable("the provider's JWKS cannot be read") from exc

    # -- the two legs ---------------------------------------------------------------------

    async def start(self, provider: StaffProvider) -> Started:
        meta = await self.metadata(provider)
        verifier = generate_token(64)
        nonce = generate_token(32)
        async with self._client(provider) as client:
            url, state = client.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
        cookie = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with self.maker() as db, db.begin():
            # Sign-ins abandoned at the provider do not pile up.
            await db.execute(delete(StaffLoginAttempt).where(StaffLoginAttempt.expires_at <= now))
            db.add(
                StaffLoginAttempt(
                    id_hash=digest(cookie),
                    provider=provider.name,
                    state=state,
                    nonce=nonce,
                    code_verifier=self.cipher.encrypt(verifier.encode()),
                    expires_at=now + timedelta(seconds=self.settings.staff_login_seconds),
                )
            )
        return Started(cookie, url)

    async def take(self, cookie: str | None, state: str | None) -> Attempt:
        """The sign-in this browser started, used up; refused when the state does not match."""
        if not cookie or len(cookie) > 128 or not state:
            raise SignInRefused("no sign-in under way in this browser", slug="staff-login-state")
        async with self.maker() as db, db.begin():
            row = await db.get(StaffLoginAttempt, digest(cookie), with_for_update=True)
            if row is None:
                raise SignInRefused("unknown sign-in", slug="staff-login-state")
            await db.delete(row)
        if row.expires_at <= datetime.now(UTC):
            raise SignInRefused("the sign-in took too long", slug="staff-login-state")
        if not secrets.compare_digest(row.state.encode(), state.encode()):
            raise SignInRefused("state does not match", slug="staff-login-state")
        provider = self.settings.staff_provider(row.provider)
        if provider is None:
            raise SignInRefused(f"provider {row.provider} is no longer configured")
        verifier = self.cipher.decrypt(row.code_verifier).decode()
        return Attempt(provider, row.state, row.nonce, verifier)

    async def finish(self, attempt: Attempt, callback_url: str) -> str:
        """Redeem the code and check the ID token; returns the ID token to exchange."""
        provider = attempt.provider
        meta = await self.metadata(provider)
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
        # RFC 9207: a provider that names itself must be the one the sign-in went to (mix-up).
        if "iss" in params and params["iss"] != provider.issuer:
            raise SignInRefused(f"callback from issuer {params['iss']!r}")
        if "error" in params:
            raise SignInRefused(
                f"provider answered {params['error'][:64]}", slug="staff-login-denied"
            )
        try:
            async with self._client(provider) as client:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    authorization_response=callback_url,
                    state=attempt.state,
                    code_verifier=attempt.verifier,
                )
        except OAuth2Error as exc:
            raise SignInRefused(f"token endpoint: {exc.error}") from exc
        except httpx.HTTPError as exc:
            raise unreachable(f"token endpoint: {type(exc).__name__}") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("no ID token in the answer")
        await self.verify(provider, id_token, attempt.nonce)
        return id_token

    async def verify(self, provider: StaffProvider, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's signature (the provider's keys, its allowed algorithms only) and
        claims (OpenID Connect Core 3.1.3.7)."""
        algorithms = list(provider.algorithms)
        try:
            decoded = jwt.decode(id_token, await self._key_set(provider, refetch=False), algorithms)
        except JoseError:
            try:  # perhaps a key the provider has just rotated in
                keys = await self._key_set(provider, refetch=True)
                decoded = jwt.decode(id_token, keys, algorithms)
            except JoseError as exc:
                raise SignInRefused(f"ID token signature: {exc.error}") from exc
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": provider.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInRefused(f"ID token claims: {exc.error} {exc.description or ''}") from exc
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != provider.client_id:
            raise SignInRefused("ID token for several audiences without our azp")
        return claims
