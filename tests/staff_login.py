"""The web portal's part of staff sign-in, played by a test without a browser.

What the portal does (authlib's httpx client, as docs/gateway.md tells the portal to): read
the provider's discovery document, send the browser to the authorization endpoint with
`state`, `nonce` and a PKCE S256 challenge, take the code the provider sends back, fetch the
tokens with the code verifier, check the ID token (signature, issuer, audience, nonce), and
exchange it at the gateway (RFC 8693) as its gateway client. The "browser" here is an httpx
client following the staff page's form by hand.

Used in-process (an httpx transport routing to the apps) and against the platform as
processes (no transport: real sockets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
_FORM = re.compile(
    r'<form method="post" action="(?P<action>[^"]+)">'
    r'<input type="hidden" name="request" value="(?P<request>[^"]+)">'
    r'<input type="hidden" name="account" value="(?P<account>[^"]+)">'
    r".*?<button[^>]*>(?P<button>[^<]*)</button>",
    re.S,
)


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class StaffButton:
    action: str
    request: str
    account: str
    text: str


def staff_buttons(page: str) -> list[StaffButton]:
    """The sign-in buttons of the provider's staff page, one per account."""
    return [
        StaffButton(m["action"], m["request"], m["account"], m["button"])
        for m in _FORM.finditer(page)
    ]


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class StaffLogin:
    issuer: str
    gateway: str
    client_id: str
    client_secret: str
    redirect_uri: str
    gateway_client: tuple[str, str]
    transport: httpx.AsyncBaseTransport | None = None
    oauth: AsyncOAuth2Client = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    metadata: dict[str, Any] = field(init=False, default_factory=dict)

    async def __aenter__(self) -> StaffLogin:
        self.oauth = AsyncOAuth2Client(
            self.client_id,
            self.client_secret,
            scope="openid profile",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            transport=self.transport,
            timeout=30,
        )
        self.http = httpx.AsyncClient(transport=self.transport, timeout=30)
        r = await self.http.get(f"{self.issuer}/.well-known/openid-configuration")
        assert r.status_code == 200, r.text
        self.metadata = r.json()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.oauth.aclose()
        await self.http.aclose()

    def authorization(self, **params: Any) -> Authorization:
        verifier = generate_token(64)
        nonce = generate_token(24)
        url, state = self.oauth.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params
        )
        return Authorization(url, state, nonce, verifier)

    async def staff_page(self, auth: Authorization) -> httpx.Response:
        return await self.http.get(auth.url)

    async def choose(self, page: httpx.Response, subject: str) -> httpx.Response:
        """Press the sign-in button of the account; the provider's redirect, not followed."""
        button = next(b for b in staff_buttons(page.text) if b.account == subject)
        return await self.http.post(
            httpx.URL(self.issuer).join(button.action),
            data={"request": button.request, "account": button.account},
        )

    async def fetch_token(self, callback: str, verifier: str, **kw: Any) -> dict[str, Any]:
        token: dict[str, Any] = await self.oauth.fetch_token(
            self.metadata["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            **kw,
        )
        return token

    async def id_token_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """What the portal checks before trusting the ID token itself."""
        keys = KeySet.import_key_set((await self.http.get(self.metadata["jwks_uri"])).json())
        decoded = jwt.decode(id_token, keys, algorithms=["ES256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.metadata["issuer"]},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        ).validate(decoded.claims)
        return dict(decoded.claims)

    async def exchange(
        self, id_token: str, client: tuple[str, str] | None = None, **form: str
    ) -> httpx.Response:
        return await self.http.post(
            f"{self.gateway}/v1/auth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": id_token,
                "subject_token_type": ID_TOKEN_TYPE,
                **form,
            },
            auth=client or self.gateway_client,
        )

    async def id_token(self, subject: str) -> str:
        """Sign in at the provider as the account; its ID token, checked as the portal does."""
        auth = self.authorization()
        page = await self.staff_page(auth)
        assert page.status_code == 200, page.text
        back = await self.choose(page, subject)
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        assert location.startswith(self.redirect_uri + "?")
        assert query_of(location)["state"] == auth.state
        token = await self.fetch_token(location, auth.verifier)
        await self.id_token_claims(token["id_token"], auth.nonce)
        return str(token["id_token"])

    async def sign_in(self, subject: str) -> dict[str, Any]:
        """The whole flow: the gateway's staff session for the account."""
        r = await self.exchange(await self.id_token(subject))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body
