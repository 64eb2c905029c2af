"""The development identity provider: the enterprise-code legal-person SSO, simulated.

It speaks the protocol the gateway uses with the real provider (domain.md section 4):

* `GET /opensso/spsaehandler/metaAlias/sp?spappurl=<callback>`: the login page. It lists
  the demo enterprises; choosing one and passing the (simulated) face check sends the
  browser back to `spappurl` with `ssotoken=...`.
* `POST /rest/user/query`: body `{"token": ssotoken}`, headers `x-esso-project-id` and
  `x-esso-signature` (hex HMAC-SHA256 of the raw body under the project secret). Answers
  `{"errCode": 0, "msg": "success", "info": {...}}`, or a non-zero `errCode` and `msg`.
  Like the real service it answers HTTP 200 with the error in the body.
* `POST /simulate-login` (form `uscc`, optional `attn_name`, `real_level`): the shortcut
  for tests and demos, `{"ssotoken": ...}`. It signs anyone in as any demo enterprise without
  a page, so it exists only when `IDP_SIMULATE_LOGIN=true` (`make run` and the test harness
  set it; compose and Kubernetes do not).

A login sends the ssotoken only to a configured callback (`IDP_ALLOWED_CALLBACKS`: exact
origins and path prefixes, see `devtools.idp.callbacks`). Every answer carries
`X-ESSO-Simulator: development`, by which a production gateway recognises and refuses this
provider even when it is reached under another name.

ssotokens are single-use and expire after `IDP_TOKEN_TTL` seconds. State is in memory: one
process, development only; it refuses to start in production. The login page is plain
server-side HTML.

Beside it, the same process is the development OpenID Connect provider for staff (government
staff and bank officers): `devtools.idp.oidc`, its routes under `/oidc/` and discovery at
`/.well-known/openid-configuration`.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devtools.idp.callbacks import callback_allowed
from devtools.idp.oidc import OidcProvider, oidc_router
from devtools.idp.settings import IdpSettings
from devtools.idp.staff import StaffAccount, default_accounts
from gateway.auth.esso import SIMULATOR_HEADER
from shared.errors import BadRequest, NotFound, install_problem_handlers

ERR_OK = 0
ERR_PROJECT = 1001  # unknown project id
ERR_SIGNATURE = 1002  # signature missing or wrong
ERR_REQUEST = 1003  # body is not {"token": "..."}
ERR_TOKEN = 1004  # unknown or expired ssotoken
ERR_USED = 1005  # ssotoken already used


@dataclass(frozen=True)
class DemoEnterprise:
    uscc: str
    name: str
    legal_rep: str


@dataclass
class IssuedToken:
    enterprise: DemoEnterprise
    attn_name: str
    real_level: int
    login_type: str
    expires_at: float
    used: bool = False


class TokenStore:
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._tokens: dict[str, IssuedToken] = {}

    def issue(
        self, enterprise: DemoEnterprise, attn_name: str, real_level: int, login_type: str
    ) -> str:
        now = time.time()
        # Forget what can no longer be used, so the store stays small.
        for key in [k for k, t in self._tokens.items() if t.expires_at < now - 60]:
            del self._tokens[key]
        token = secrets.token_urlsafe(24)
        self._tokens[token] = IssuedToken(
            enterprise, attn_name, real_level, login_type, now + self.ttl
        )
        return token

    def redeem(self, token: str) -> IssuedToken | int:
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at < time.time():
            return ERR_TOKEN
        if issued.used:
            return ERR_USED
        issued.used = True
        return issued


def load_enterprises(path: Path) -> dict[str, DemoEnterprise]:
    if not path.exists():
        return {}
    rows = json.loads(path.read_text(encoding="utf-8"))
    return {
        str(r["uscc"]).upper(): DemoEnterprise(
            str(r["uscc"]).upper(), str(r["name"]), str(r.get("legal_rep") or "")
        )
        for r in rows
    }


def _in_production(settings: IdpSettings) -> bool:
    return (
        settings.environment == "production"
        or os.environ.get("ENVIRONMENT", "").strip().lower() == "production"
    )


def user_info(issued: IssuedToken) -> dict[str, Any]:
    e = issued.enterprise
    digest = hashlib.sha256(f"{e.uscc}:{issued.attn_name}".encode()).hexdigest()
    return {
        "CompanyName": e.name,
        "uniscid": e.uscc,
        "CompanyRegNumber": "330108" + str(int(digest[:12], 16))[:9].zfill(9),
        "OrganizationNumber": f"{e.uscc[8:16]}-{e.uscc[16]}",
        "CompanyLegRep": e.legal_rep,
        "CompanyType": "有限责任公司",
        "OrgType": "企业法人",
        "CompanyAddress": "浙江省杭州市滨江区",
        "CompanyScope": "技术开发、技术服务",
        "xzqh": e.uscc[2:8],
        "status": "存续",
        "userId": "dev-" + digest[:20],
        "loginType": issued.login_type,
        "realLevel": str(issued.real_level),
        "attnName": issued.attn_name,
        "attnPhone": "138****0000",
        "attnIDType": "111",
        "attnIDNo": "3301**********0000",
    }


class SimulatorMarker:
    """Marks every answer as the simulator's (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (SIMULATOR_HEADER.encode(), b"development"),
                ]
            await send(message)

        await self.app(scope, receive, marked if scope["type"] == "http" else send)


def _with_ssotoken(spappurl: str, token: str) -> str:
    parts = urlsplit(spappurl)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"ssotoken": token})))


_PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8">
<title>企业码登录 (development)</title>
<style>body{{font-family:sans-serif;max-width:44rem;margin:2rem auto}}
li{{margin:.4rem 0}} .note{{color:#a00}}</style></head><body>
<h1>浙江政务服务网 · 法人登录 (development simulator)</h1>
<p class="note">Development identity provider: no real identities. Choose an enterprise;
its legal representative then passes a simulated face check.</p>
{body}</body></html>"""


def _login_list(enterprises: dict[str, DemoEnterprise], spappurl: str) -> str:
    items = [
        '<li><form method="post" action="/login">'
        f'<input type="hidden" name="spappurl" value="{html.escape(spappurl)}">'
        f'<input type="hidden" name="uscc" value="{html.escape(e.uscc)}">'
        f"<b>{html.escape(e.name)}</b> {html.escape(e.uscc)} · 法定代表人 "
        f'<input name="attn_name" value="{html.escape(e.legal_rep)}" size="8">'
        ' <button type="submit">登录</button></form></li>'
        for e in enterprises.values()
    ]
    if not items:
        return "<p>No demo enterprises yet (load the demo data first).</p>"
    return f"<ul>{''.join(items)}</ul>"


def _face_check_page(e: DemoEnterprise, spappurl: str, attn_name: str) -> str:
    return (
        f"<h2>{html.escape(e.name)}</h2><p>人脸识别 (simulated) for "
        f"{html.escape(attn_name)}</p>"
        '<form method="post" action="/face-check">'
        f'<input type="hidden" name="spappurl" value="{html.escape(spappurl)}">'
        f'<input type="hidden" name="uscc" value="{html.escape(e.uscc)}">'
        f'<input type="hidden" name="attn_name" value="{html.escape(attn_name)}">'
        '<button name="passed" value="yes">Face check passes</button> '
        '<button name="passed" value="no">Face check fails</button></form>'
    )


def _esso_error(code: int, msg: str) -> JSONResponse:
    return JSONResponse({"errCode": code, "msg": msg})


def _query_token(raw: bytes) -> str | None:
    try:
        payload = json.loads(raw)
        token = payload["token"]
    except (ValueError, KeyError, TypeError):
        return None
    return token if isinstance(token, str) else None


def _user_query(settings: IdpSettings, store: TokenStore, headers: Any, raw: bytes) -> JSONResponse:
    """The provider's signed user query: project, signature, then the one-use ssotoken."""
    if headers.get("x-esso-project-id") != settings.project_id:
        return _esso_error(ERR_PROJECT, "项目不存在 (unknown project)")
    secret = settings.project_secret.get_secret_value().encode()
    expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    given = headers.get("x-esso-signature", "").strip().lower()
    if not hmac.compare_digest(expected, given):
        return _esso_error(ERR_SIGNATURE, "签名错误 (bad signature)")
    token = _query_token(raw)
    if token is None:
        return _esso_error(ERR_REQUEST, '参数错误 (body must be {"token": ...})')
    redeemed = store.redeem(token)
    if redeemed == ERR_USED:
        return _esso_error(ERR_USED, "令牌已使用 (ssotoken already used)")
    if not isinstance(redeemed, IssuedToken):
        return _esso_error(ERR_TOKEN, "令牌无效或已过期 (ssotoken invalid or expired)")
    return JSONResponse({"errCode": ERR_OK, "msg": "success", "info": user_info(redeemed)})


def esso_router(settings: IdpSettings, store: TokenStore) -> APIRouter:
    """The enterprise-code (ESSO) side: login page, simulated face check, user query."""
    router = APIRouter()
    callbacks = settings.callbacks()

    def find(uscc: str) -> DemoEnterprise:
        # Read on each use: the demo loader may write the file after we started.
        enterprise = load_enterprises(settings.enterprises_file).get(uscc.strip().upper())
        if enterprise is None:
            raise NotFound(f"No demo enterprise {uscc}")
        return enterprise

    def check_callback(spappurl: str) -> None:
        if not callback_allowed(callbacks, spappurl):
            raise BadRequest("spappurl is not an allowed callback")

    @router.get("/opensso/spsaehandler/metaAlias/sp", response_class=HTMLResponse)
    async def login_page(spappurl: Annotated[str, Query(max_length=2048)]) -> HTMLResponse:
        check_callback(spappurl)
        body = _login_list(load_enterprises(settings.enterprises_file), spappurl)
        return HTMLResponse(_PAGE.format(body=body))

    @router.post("/login", response_class=HTMLResponse)
    async def login(
        spappurl: Annotated[str, Form(max_length=2048)],
        uscc: Annotated[str, Form(max_length=18)],
        attn_name: Annotated[str, Form(max_length=64)],
    ) -> HTMLResponse:
        check_callback(spappurl)
        return HTMLResponse(_PAGE.format(body=_face_check_page(find(uscc), spappurl, attn_name)))

    @router.post("/face-check", response_model=None)
    async def face_check(
        spappurl: Annotated[str, Form(max_length=2048)],
        uscc: Annotated[str, Form(max_length=18)],
        attn_name: Annotated[str, Form(max_length=64)],
        passed: Annotated[str, Form(max_length=8)],
    ) -> HTMLResponse | RedirectResponse:
        check_callback(spappurl)
        e = find(uscc)
        if passed != "yes":
            return HTMLResponse(
                _PAGE.format(body="<p>Face check failed: not logged in.</p>"), status_code=403
            )
        token = store.issue(e, attn_name, settings.default_real_level, "Elicense")
        return RedirectResponse(_with_ssotoken(spappurl, token), status_code=303)

    async def simulate_login(
        uscc: Annotated[str, Form(max_length=18)],
        attn_name: Annotated[str | None, Form(max_length=64)] = None,
        real_level: Annotated[int | None, Form(ge=1, le=4)] = None,
    ) -> dict[str, str]:
        e = find(uscc)
        name = attn_name if attn_name is not None else e.legal_rep
        level = real_level if real_level is not None else settings.default_real_level
        return {"ssotoken": store.issue(e, name, level, "Elicense")}

    if settings.simulate_login:
        router.post("/simulate-login", summary="Scripted login for tests and demos")(simulate_login)

    @router.post("/rest/user/query", summary="ESSO user query (signed)")
    async def user_query(request: Request) -> JSONResponse:
        return _user_query(settings, store, request.headers, await request.body())

    return router


def create_app(
    settings: IdpSettings | None = None, staff: tuple[StaffAccount, ...] | None = None
) -> FastAPI:
    """`staff`: the staff accounts of the OpenID Connect provider (the demo ones by default)."""
    settings = settings or IdpSettings()
    if _in_production(settings):
        raise RuntimeError("the development identity provider refuses to run in production")
    store = TokenStore(settings.token_ttl)
    app = FastAPI(
        title="Development identity provider (enterprise-code ESSO and staff OpenID Connect)",
        description=__doc__,
        version="1.0.0",
        # Only the protocol is published: no API documentation to browse.
        openapi_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(SimulatorMarker)
    app.state.settings = settings
    app.state.tokens = store
    oidc = OidcProvider(settings, staff if staff is not None else default_accounts())
    app.state.oidc = oidc
    app.include_router(oidc_router(oidc))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(esso_router(settings, store))
    return app
