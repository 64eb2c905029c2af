"""Who is calling: the claims of an internal token, as a typed value."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class PrincipalKind(StrEnum):
    ENTERPRISE = "enterprise"
    BANK = "bank"
    GOVERNMENT = "government"
    SERVICE = "service"


# What a signed-in staff member may do: a viewer reads, an operator also changes things.
# Enterprises and client-credential clients have no role (their scopes and kind decide).
Role = Literal["viewer", "operator"]


class Principal(BaseModel):
    sub: str
    kind: PrincipalKind
    uscc: str | None = None
    bank_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    act: str | None = Field(None, description="The person acting (e.g. the legal representative)")
    role: Role | None = Field(
        None, description="A staff member's role; a viewer may not change anything"
    )

    @model_validator(mode="after")
    def _bound(self) -> Self:
        if self.kind is PrincipalKind.ENTERPRISE and not self.uscc:
            raise ValueError("an enterprise principal needs uscc")
        if self.kind is PrincipalKind.BANK and not self.bank_id:
            raise ValueError("a bank principal needs bank_id")
        if self.role is not None and self.kind not in (
            PrincipalKind.GOVERNMENT,
            PrincipalKind.BANK,
        ):
            raise ValueError("only government staff and bank officers have a role")
        return self

    @property
    def is_government(self) -> bool:
        return self.kind is PrincipalKind.GOVERNMENT

    @property
    def is_service(self) -> bool:
        return self.kind is PrincipalKind.SERVICE

    @property
    def read_only(self) -> bool:
        return self.role == "viewer"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
