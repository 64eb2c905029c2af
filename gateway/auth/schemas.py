from __future__ import annotations

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
    scopes: list[str] = Field(default_factory=list)
    company_name: str | None = None
    session_expires_at: str | None = None
