"""A development stand-in for the enterprise-code legal-person SSO (ESSO)."""
