"""Staff sign-in: an organisation's ID token, verified here, becomes a staff person.

Government staff and bank officers sign in at their organisation's OpenID Connect provider
(浙政钉 for Zhejiang government staff, each bank its own) through a relying party, the web
portal, which then exchanges the ID token at `POST /v1/auth/token` (RFC 8693). The gateway
trusts nothing the portal says about the person: it verifies the ID token itself.

* The issuer (`iss`, read before verification only to pick the provider) must be one of
  `GATEWAY_STAFF_PROVIDERS`; the signature is checked against that provider's JWKS (fetched
  with httpx, cached, refetched when an unknown key id appears: `JwksCache`), with one of its
  asymmetric algorithms; `aud` must be the provider's configured audience (and `azp` must say
  so when several audiences are named); `exp`, `iat` (not older than
  `GATEWAY_STAFF_ID_TOKEN_MAX_AGE`) and `nbf` are checked with a small clock leeway.
* The person: the organisation from the provider (fixed, or a claim limited to `orgs`), the
  role from `role_claim` (`operator` for one of `operator_values`, otherwise `viewer`: the
  least power when in doubt), the display name from `name` (or `preferred_username`), and a
  principal subject `staff:<provider name>:<sub>`.
* Each ID token is exchanged once (`consumed_id_tokens`), so a copy of one is worth nothing.

In production a JWKS answer marked by the development provider is refused, whatever name
that provider was reached under (the settings already refuse its usual addresses).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.util import urlsafe_b64decode
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.esso import SIMULATOR_HEADER
from gateway.models import ConsumedIdToken
from gateway.settings import BANK_ID, GatewaySettings, StaffProvider
from shared.auth.principal import PrincipalKind, Role
from shared.auth.tokens import CLOCK_LEEWAY, JwksCache
from shared.errors import ProblemError, ServiceUnavailable

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

# What each role may do, per kind of organisation. A viewer reads; an operator also holds
# the write scope the gateway requires for its organisation's changes.
ROLE_SCOPES: dict[tuple[PrincipalKind, Role], list[str]] = {
    (PrincipalKind.GOVERNMENT, "viewer"): ["scoring:read", "credit:read", "policy:read"],
    (PrincipalKind.GOVERNMENT, "operator"): [
        "scoring:read",
        "credit:read",
        "policy:read",
        "scoring:admin",
        "policy:admin",
    ],
    (PrincipalKind.BANK, "viewer"): ["credit:read", "scoring:read", "policy:read"],
    (PrincipalKind.BANK, "operator"): [
        "credit:read",
        "scoring:read",
        "policy:read",
        "credit:decide",
    ],
}

MAX_ID_TOKEN_BYTES = 16 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StaffTokenRefused(ProblemError):
    """RFC 8693 section 2.2.2: an unacceptable subject token is an `invalid_request`."""

    status = 400
    slug = "staff-token-refused"
    title = "The ID token was refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, error="invalid_request")


@dataclass(frozen=True)
class StaffPerson:
    """Who signed in, as the gateway will name them."""

    provider: StaffProvider
    subject: str
    name: str
    kind: PrincipalKind
    bank_id: str | None
    role: Role
    expires_at: float

    @property
    def sub(self) -> str:
        return principal_sub(self.provider.name, self.subject)


def principal_sub(provider_name: str, subject: str) -> str:
    return f"staff:{provider_name}:{subject}"


def role_scopes(kind: PrincipalKind, role: Role) -> list[str]:
    return list(ROLE_SCOPES[(kind, role)])


def _segment(token: str, index: int) -> dict[str, Any]:
    try:
        value = json.loads(urlsafe_b64decode(token.split(".")[index].encode()))
    except Exception as exc:
        raise StaffTokenRefused("The ID token is malformed") from exc
    if not isinstance(value, dict):
        raise StaffTokenRefused("The ID token is malformed")
    return value


def _text(value: object, limit: int) -> str | None:
    """A display value: normalised, without control characters, bounded."""
    if not isinstance(value, str):
        return None
    cleaned = _CONTROL.sub("", unicodedata.normalize("NFKC", value)).strip()
    return cleaned[:limit] or None


def _fetcher(
    http: httpx.AsyncClient, url: str, timeout: float, refuse_simulator: bool
) -> JwksCache:
    async def fetch() -> dict[str, Any]:
        resp = await http.get(url, timeout=timeout)
        if refuse_simulator and SIMULATOR_HEADER in resp.headers:
            raise RuntimeError("the development identity provider is not accepted here")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    return JwksCache(fetch)


class StaffVerifier:
    """Verifies ID tokens of the configured staff providers and maps their people."""

    def __init__(
        self,
        providers: list[StaffProvider],
        jwks: dict[str, JwksCache],
        max_age: int,
    ) -> None:
        self.providers = {p.issuer: p for p in providers}
        self.by_name = {p.name: p for p in providers}
        self.jwks = jwks
        self.max_age = max_age

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, http: httpx.AsyncClient, timeout: float = 5.0
    ) -> StaffVerifier:
        production = settings.environment == "production"
        jwks = {
            p.issuer: _fetcher(http, p.jwks_url, timeout, refuse_simulator=production)
            for p in settings.staff_providers
        }
        return cls(settings.staff_providers, jwks, settings.staff_id_token_max_age)

    async def verify(self, id_token: str) -> StaffPerson:
        if len(id_token) > MAX_ID_TOKEN_BYTES or id_token.count(".") != 2:
            raise StaffTokenRefused("subject_token is not a signed JWT")
        header = _segment(id_token, 0)
        issuer = _segment(id_token, 1).get("iss")
        provider = self.providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise StaffTokenRefused("The ID token's issuer is not a trusted staff provider")
        alg = header.get("alg")
        if alg not in provider.algorithms:
            raise StaffTokenRefused(f"Signature algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise StaffTokenRefused("The ID token's key id is malformed")
        try:
            keys: KeySet = await self.jwks[provider.issuer].get(kid)
        except Exception as exc:
            raise ServiceUnavailable(
                f"The keys of staff provider {provider.name} are unavailable"
            ) from exc
        try:
            decoded = jwt.decode(id_token, keys, algorithms=list(provider.algorithms))
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY,
                iss={"essential": True, "value": provider.issuer},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            ).validate(decoded.claims)
        except JoseError as exc:
            raise StaffTokenRefused(
                f"The ID token was refused: {exc.description or exc.error}"
            ) from exc
        except ValueError as exc:
            raise StaffTokenRefused("The ID token was refused") from exc
        claims = dict(decoded.claims)
        self._check_audience(provider, claims)
        self._check_age(claims)
        return self._person(provider, claims)

    @staticmethod
    def _check_audience(provider: StaffProvider, claims: dict[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or provider.audience not in audiences:
            raise StaffTokenRefused("The ID token was issued for another audience")
        # OpenID Connect Core 3.1.3.7: with several audiences, azp names the one it is for.
        if len(audiences) > 1 and claims.get("azp") != provider.audience:
            raise StaffTokenRefused("The ID token names several audiences and not us as azp")

    def _check_age(self, claims: dict[str, Any]) -> None:
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise StaffTokenRefused("The ID token has no issue time")
        now = time.time()
        if iat > now + CLOCK_LEEWAY:
            raise StaffTokenRefused("The ID token was issued in the future")
        if iat < now - self.max_age:
            raise StaffTokenRefused("The ID token is too old to exchange; sign in again")

    @staticmethod
    def _person(provider: StaffProvider, claims: dict[str, Any]) -> StaffPerson:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise StaffTokenRefused("The ID token's subject is malformed")
        kind, bank_id = _organisation(provider, claims)
        values = claims.get(provider.role_claim)
        held = [values] if isinstance(values, str) else values
        role: Role = (
            "operator"
            if isinstance(held, list) and any(v in provider.operator_values for v in held)
            else "viewer"
        )
        name = _text(claims.get("name"), 128) or _text(claims.get("preferred_username"), 128)
        return StaffPerson(
            provider=provider,
            subject=subject,
            name=name or subject,
            kind=kind,
            bank_id=bank_id,
            role=role,
            expires_at=float(claims["exp"]),
        )


def _organisation(
    provider: StaffProvider, claims: dict[str, Any]
) -> tuple[PrincipalKind, str | None]:
    org = provider.org
    if org.startswith("claim:"):
        value = claims.get(org.removeprefix("claim:"))
        if not isinstance(value, str) or not value:
            raise StaffTokenRefused("The ID token does not say which organisation")
        if provider.orgs is not None and value not in provider.orgs:
            raise StaffTokenRefused(f"Organisation {value!r} is not one this provider may name")
        org = "government" if value == "government" else f"bank:{value}"
    if org == "government":
        return PrincipalKind.GOVERNMENT, None
    bank_id = org.removeprefix("bank:")
    if not BANK_ID.match(bank_id):
        raise StaffTokenRefused("The ID token names a malformed bank id")
    return PrincipalKind.BANK, bank_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def consume_id_token(db: AsyncSession, id_token: str, expires_at: float) -> None:
    """Refuse an ID token exchanged before; concurrent duplicates wait on the unique key."""
    if secrets.randbelow(100) == 0:  # now and then, not on every sign-in
        await db.execute(delete(ConsumedIdToken).where(ConsumedIdToken.expires_at < func.now()))
    inserted = await db.execute(
        insert(ConsumedIdToken)
        .values(
            token_hash=_digest(id_token),
            # Kept a little past its expiry: the leeway lets it verify that much longer.
            expires_at=datetime.fromtimestamp(expires_at + 2 * CLOCK_LEEWAY, UTC),
        )
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(ConsumedIdToken.token_hash)
    )
    if inserted.first() is None:
        raise StaffTokenRefused("This ID token has already been exchanged")
