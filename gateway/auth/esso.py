"""The enterprise-code legal-person SSO (ESSO) client, domain.md section 4.

The ssotoken from the callback is exchanged server to server: POST `{"token": ssotoken}` to
the provider's user query with `x-esso-project-id` and `x-esso-signature` (hex HMAC-SHA256
of the exact body bytes under the project secret). `errCode` 0 means `info` describes the
enterprise and the person who logged in; anything else is a refusal.

Our acceptance policy: a legal-person login only, that is the operator (`attnName`) is the
enterprise's legal representative (`CompanyLegRep`), at or above the configured assurance
level (`realLevel`), for a well-formed unified social credit code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from dataclasses import dataclass
from typing import Any

import httpx

from shared.errors import Forbidden, ServiceUnavailable, Unauthorized, UpstreamError
from shared.identifiers import canonical_uscc

# What the development provider marks its answers with (devtools.idp.app).
SIMULATOR_HEADER = "x-esso-simulator"


class EssoRefused(Unauthorized):
    slug = "esso-refused"
    title = "Enterprise-code login refused"


class NotLegalPerson(Forbidden):
    slug = "not-legal-person"
    title = "Only the legal representative may log in"


class AssuranceTooLow(Forbidden):
    slug = "assurance-too-low"
    title = "Identity assurance level too low"


@dataclass(frozen=True)
class EssoUser:
    uscc: str
    company_name: str
    legal_rep: str
    user_id: str
    attn_name: str
    real_level: int
    login_type: str | None


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same_person(a: str, b: str) -> bool:
    # Names come from different registries: compare them normalised (full-width forms,
    # stray spaces), never loosely beyond that.
    def norm(s: str) -> str:
        return "".join(unicodedata.normalize("NFKC", s).split())

    return bool(norm(a)) and norm(a) == norm(b)


class EssoClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        query_url: str,
        project_id: str,
        project_secret: str,
        timeout: float,
        *,
        refuse_simulator: bool = False,
    ) -> None:
        self.http = http
        # Production: an answer marked by the development provider is refused, whatever
        # name it was reached under (settings refuse its usual addresses at start).
        self.refuse_simulator = refuse_simulator
        self.query_url = query_url
        self.project_id = project_id
        self.project_secret = project_secret
        self.timeout = timeout

    async def query(self, ssotoken: str) -> dict[str, Any]:
        body = json.dumps({"token": ssotoken}, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "x-esso-project-id": self.project_id,
            "x-esso-signature": sign(body, self.project_secret),
        }
        try:
            resp = await self.http.post(
                self.query_url, content=body, headers=headers, timeout=self.timeout
            )
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable("The enterprise-code provider did not answer") from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The enterprise-code provider is unreachable") from exc
        if self.refuse_simulator and SIMULATOR_HEADER in resp.headers:
            raise EssoRefused("The development identity provider is not accepted in production")
        if resp.status_code != 200:
            raise UpstreamError(f"The enterprise-code provider answered {resp.status_code}")
        try:
            data = resp.json()
            code = int(data["errCode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError("The enterprise-code provider's answer is malformed") from exc
        if code != 0:
            raise EssoRefused(str(data.get("msg") or "The ssotoken was refused"), esso_code=code)
        info = data.get("info")
        if isinstance(info, str):  # some deployments send info as a JSON string
            try:
                info = json.loads(info)
            except ValueError as exc:
                raise UpstreamError("The enterprise-code provider's info is malformed") from exc
        if not isinstance(info, dict):
            raise UpstreamError("The enterprise-code provider sent no user info")
        return info

    async def login(self, ssotoken: str, min_real_level: int) -> EssoUser:
        info = await self.query(ssotoken)
        user = parse_user(info)
        if not _same_person(user.attn_name, user.legal_rep):
            raise NotLegalPerson(
                "The person who logged in is not the enterprise's legal representative"
            )
        if user.real_level < min_real_level:
            raise AssuranceTooLow(
                f"Assurance level {user.real_level} is below the required {min_real_level}"
            )
        return user


def parse_user(info: dict[str, Any]) -> EssoUser:
    def text(key: str) -> str:
        value = info.get(key)
        return str(value).strip() if value is not None else ""

    uscc = canonical_uscc(text("uniscid"))
    if uscc is None:
        raise EssoRefused("The login carries no valid unified social credit code")
    try:
        real_level = int(text("realLevel") or 0)
    except ValueError:
        real_level = 0
    user_id = text("userId")
    if not user_id:
        raise UpstreamError("The enterprise-code provider sent no userId")
    return EssoUser(
        uscc=uscc,
        company_name=text("CompanyName"),
        legal_rep=text("CompanyLegRep"),
        user_id=user_id,
        attn_name=text("attnName"),
        real_level=real_level,
        login_type=text("loginType") or None,
    )
