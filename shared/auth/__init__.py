"""Internal identity: short-lived ES256 tokens minted by the gateway, verified by every service."""

from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenIssuer, TokenVerifier

__all__ = ["Principal", "PrincipalKind", "TokenIssuer", "TokenVerifier"]
