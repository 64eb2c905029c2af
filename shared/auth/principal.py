"""Who is calling: the claims of an internal token, as a typed value."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, model_validator


class PrincipalKind(StrEnum):
    ENTERPRISE = "enterprise"
    BANK = "bank"
    GOVERNMENT = "government"
    SERVICE = "service"


class Principal(BaseModel):
    sub: str
    kind: PrincipalKind
    uscc: str | None = None
    bank_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    act: str | None = Field(None, description="The person acting (e.g. the legal representative)")

    @model_validator(mode="after")
    def _bound(self) -> Self:
        if self.kind is PrincipalKind.ENTERPRISE and not self.uscc:
            raise ValueError("an enterprise principal needs uscc")
        if self.kind is PrincipalKind.BANK and not self.bank_id:
            raise ValueError("a bank principal needs bank_id")
        return self

    @property
    def is_government(self) -> bool:
        return self.kind is PrincipalKind.GOVERNMENT

    @property
    def is_service(self) -> bool:
        return self.kind is PrincipalKind.SERVICE

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
