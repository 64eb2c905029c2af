from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PLACEHOLDER_SECRETS, ComponentSettings


class WebhookTarget(BaseModel):
    """Where a bank's system receives notifications, and the secret they are signed with.

    The secret uses the Standard Webhooks form (`whsec_` + base64), so a bank can verify
    with any Standard Webhooks library.
    """

    url: str
    secret: SecretStr


class CreditSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="CREDIT_", extra="ignore", frozen=True)

    # The scoring service (its event feed and published scores).
    scoring_url: str = "http://scoring"
    # Seconds between polls of the scoring event feed; 0 disables the background consumer
    # (tests call `sync_evaluations` directly).
    sync_interval: float = 10.0
    events_batch: int = 100
    scores_page_size: int = 5000
    # Seconds between outbox delivery rounds; 0 disables the background dispatcher.
    outbox_interval: float = 2.0
    outbox_batch: int = 100
    webhook_timeout: float = 5.0
    webhook_max_attempts: int = 10
    # Retry n waits min(cap, base * 2**(n-1)) seconds, with up to 20% jitter.
    webhook_backoff_base: float = 2.0
    webhook_backoff_cap: float = 900.0
    # bank_id -> target, e.g.
    # CREDIT_BANK_WEBHOOKS='{"icbc-binjiang": {"url": "http://...", "secret": "whsec_..."}}'
    bank_webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    # The base line every scored enterprise should get (coverage statistics).
    base_line_amount: int = 500_000

    @model_validator(mode="after")
    def _refuse_placeholder_webhook_secrets(self) -> Self:
        if self.environment == "development":
            return self
        for bank_id, target in self.bank_webhooks.items():
            if target.secret.get_secret_value() in PLACEHOLDER_SECRETS:
                raise ValueError(f"bank_webhooks[{bank_id}] holds a placeholder secret")
        return self
