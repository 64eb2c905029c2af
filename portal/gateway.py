"""The portal's one way into the platform: the gateway's public API, called server side.

Every call carries the session's bearer token and the request id (the shared HTTP client
forwards it). An access token about to expire is refreshed first, and a 401 is answered by one
refresh and one retry (a 401 means the gateway did nothing, so even a POST is safe to send
again); when the gateway refuses the refresh, the portal session ends too.

Every browser's sign-in and refresh reach the gateway from the portal's address. So that the
gateway's per-address login limit counts browsers, not the portal, the portal authenticates
at the login endpoints as its gateway client (kind `portal`, a trusted forwarder there) and
forwards the browser's address in X-Forwarded-For (docs/gateway.md).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.sessions import GatewayTokens, Session, SessionEnded, SessionStore

log = structlog.get_logger("portal.gateway")

# The address of the browser the current request serves: the peer uvicorn resolved (behind
# the ingress, from the X-Forwarded-For of the trusted ingress alone, never the browser's).
_browser: ContextVar[str | None] = ContextVar("portal_browser", default=None)


class BrowserAddressMiddleware:
    """Keeps the browser's address for the gateway calls the request makes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if not client:
            await self.app(scope, receive, send)
            return
        token = _browser.set(str(client[0]))
        try:
            await self.app(scope, receive, send)
        finally:
            _browser.reset(token)


@dataclass
class GatewayProblem(Exception):
    """The gateway (or a service behind it) said no; `body` is its problem document."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.body.get('title', '')}"

    @property
    def slug(self) -> str:
        return str(self.body.get("type", "")).rsplit("/", 1)[-1]

    @classmethod
    def of(cls, resp: httpx.Response) -> GatewayProblem:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return cls(resp.status_code, body if isinstance(body, dict) else {})


def unavailable(reason: str) -> GatewayProblem:
    return GatewayProblem(503, {"title": "Service unavailable", "detail": reason})


def tokens_from(body: dict[str, Any]) -> GatewayTokens:
    return GatewayTokens(
        access_token=str(body["access_token"]),
        access_expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        refresh_token=body.get("refresh_token"),
    )


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


class GatewayClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        store: SessionStore,
        margin_seconds: int,
        client: tuple[str, str] | None = None,
    ) -> None:
        self.http = http
        self.store = store
        self.margin = timedelta(seconds=margin_seconds)
        # The portal's own gateway client, for the login endpoints; None: sign-ins count
        # against the portal's address (development without one).
        self.client_auth = httpx.BasicAuth(*client) if client else None

    def _as_forwarder(self, headers: dict[str, str]) -> httpx.BasicAuth | None:
        """Authentication and the browser's address for a login-endpoint call."""
        browser = _browser.get()
        if self.client_auth is not None and browser is not None:
            headers["X-Forwarded-For"] = browser
        return self.client_auth

    async def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        files: Any = None,
        login: bool = False,
    ) -> httpx.Response:
        """`login`: a call to a login endpoint (session exchange, refresh), made as the
        browser's forwarder."""
        sent = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        for _, part in (files or {}).items():
            # A file streamed once already (a retry after a refresh) starts again.
            if hasattr(part[1], "seek"):
                part[1].seek(0)
        auth = self._as_forwarder(sent) if login else None
        try:
            return await self.http.request(
                method,
                path,
                params=params,
                json=json,
                headers=sent,
                files=files,
                data=data,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            log.warning("gateway timeout", path=path, error=type(exc).__name__)
            raise GatewayProblem(504, {"title": "Gateway timeout"}) from exc
        except httpx.HTTPError as exc:
            log.warning("gateway unreachable", path=path, error=type(exc).__name__)
            raise unavailable("The gateway could not be reached") from exc

    async def _renew(self, session: Session, used: str | None) -> str:
        """A fresh access token, refreshing at most once across concurrent requests."""
        ended: str | None = None
        async with self.store.maker() as db, db.begin():
            row = await self.store.locked_row(db, session.id_hash)
            if row is None:
                raise SessionEnded("session deleted")
            current = self.store.tokens_of(row)
            fresh = current.access_expires_at - self.margin > datetime.now(UTC)
            if current.access_token != used and fresh:
                session.tokens = current  # another request renewed it meanwhile
                return current.access_token
            if current.refresh_token is None:
                ended = "nothing to refresh with"
            else:
                resp = await self._send(
                    "POST",
                    "/v1/auth/refresh",
                    None,
                    json={"refresh_token": current.refresh_token},
                    login=True,
                )
                if resp.status_code in (400, 401, 403, 422):
                    ended = f"refresh refused: {resp.status_code}"
                elif resp.status_code >= 400:
                    raise GatewayProblem.of(resp)
                else:
                    tokens = tokens_from(resp.json())
                    await self.store.replace_tokens(db, row, tokens)
            if ended is not None:
                # Deleted in this transaction, which commits: the exception comes after it.
                await db.delete(row)
        if ended is not None:
            raise SessionEnded(ended)
        session.tokens = tokens
        return tokens.access_token

    async def call(
        self,
        session: Session,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        files: dict[str, tuple[str, Any, str]] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The gateway's answer (< 400), or GatewayProblem / SessionEnded. `files`: a
        multipart upload, each file object streamed (read in chunks, never held whole)."""
        token = session.tokens.access_token
        if session.tokens.access_expires_at - self.margin <= datetime.now(UTC):
            token = await self._renew(session, token)
        kw: dict[str, Any] = {
            "params": params,
            "json": json,
            "headers": headers,
            "files": files,
            "data": data,
        }
        resp = await self._send(method, path, token, **kw)
        if resp.status_code == 401:
            token = await self._renew(session, token)
            resp = await self._send(method, path, token, **kw)
            if resp.status_code == 401:
                await self.store.delete(session.id_hash)
                raise SessionEnded("the gateway no longer accepts this session")
        if resp.status_code >= 400:
            raise GatewayProblem.of(resp)
        return resp

    async def get(self, session: Session, path: str, params: Any = None) -> Any:
        return (await self.call(session, "GET", path, params=params)).json()

    async def exchange_ssotoken(self, ssotoken: str) -> dict[str, Any]:
        """What a mini-app backend does with the provider's ssotoken: a gateway session."""
        resp = await self._send(
            "POST", "/v1/auth/esso/exchange", None, json={"ssotoken": ssotoken}, login=True
        )
        if resp.status_code >= 400:
            raise GatewayProblem.of(resp)
        body: dict[str, Any] = resp.json()
        return body

    async def exchange_id_token(self, id_token: str) -> dict[str, Any]:
        """A staff member's ID token for a gateway staff session (RFC 8693), as the portal's
        gateway client."""
        if self.client_auth is None:
            raise unavailable("The portal has no gateway client for staff sign-in")
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE,
        }
        resp = await self._send("POST", "/v1/auth/token", None, data=form, login=True)
        if resp.status_code >= 400:
            raise GatewayProblem.of(resp)
        body: dict[str, Any] = resp.json()
        return body

    async def logout(self, session: Session) -> None:
        """End the gateway session too; the portal session is deleted whatever it answers."""
        body = {"refresh_token": session.tokens.refresh_token}
        try:
            resp = await self._send(
                "POST", "/v1/auth/logout", session.tokens.access_token, json=body
            )
            if resp.status_code == 401 and session.tokens.refresh_token:
                # The access token expired: the refresh token alone still names the session.
                resp = await self._send("POST", "/v1/auth/logout", None, json=body)
            if resp.status_code >= 400 and resp.status_code != 401:
                log.warning("gateway logout refused", status=resp.status_code)
        except GatewayProblem as exc:
            log.warning("gateway logout failed", status=exc.status)
