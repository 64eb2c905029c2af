from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str | None = None


class SsoTokenExchange(BaseModel):
    ssotoken: str = Field(min_length=1, max_length=512)


class EnterpriseRef(BaseModel):
    uscc: str
    name: str
    legal_rep: str | None = None


class SessionTokens(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    enterprise: EnterpriseRef


class StaffRef(BaseModel):
    """The person a staff session belongs to, as the gateway mapped them."""

    sub: str = Field(description="`staff:<provider>:<subject at the provider>`")
    name: str = Field(description="The person's name: the actor recorded on every change")
    kind: Literal["government", "bank"]
    bank_id: str | None = None
    role: Literal["viewer", "operator"]
    provider: str = Field(description="The staff provider's name (GATEWAY_STAFF_PROVIDERS)")


class StaffSessionTokens(TokenResponse):
    """RFC 8693 section 2.2.1, with the session's refresh token and the person."""

    issued_token_type: str = "urn:ietf:params:oauth:token-type:access_token"
    refresh_token: str
    refresh_expires_in: int
    staff: StaffRef


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(
        None, max_length=512, description="Omit when the refresh cookie is sent"
    )


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(None, max_length=512)


class Me(BaseModel):
    sub: str
    kind: str
    uscc: str | None = None
    bank_id: str | None = None
    act: str | None = None
    role: str | None = None
    scopes: list[str] = Field(default_factory=list)
    company_name: str | None = None
    session_expires_at: str | None = None
