"""Authentication at the gateway: enterprise-code login, client credentials, tokens."""
