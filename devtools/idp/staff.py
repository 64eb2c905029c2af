"""The demo staff accounts of the development OpenID Connect provider.

One government operator, one government viewer and one officer (an operator) per pilot bank:
the banks are those the gateway's demo bootstrap registers and the credit service seeds
(`gateway.bootstrap.DEMO_BANKS`), so a bank officer signs in to a bank that exists. The
claims are what the gateway maps (`GATEWAY_STAFF_PROVIDERS`): `org` is `government` or the
bank id, `roles` holds `operator` or `viewer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

GOVERNMENT = "government"
GOVERNMENT_LABEL = "滨江高新区管委会 (government)"

Role = Literal["operator", "viewer"]


@dataclass(frozen=True)
class StaffAccount:
    """A person the provider can sign in. `subject` is stable: the gateway keys on it."""

    subject: str
    username: str
    name: str
    org: str  # "government" or a bank id
    org_label: str
    role: Role

    def claims(self) -> dict[str, Any]:
        """The identity claims of the ID token and of userinfo (scope `openid profile`)."""
        return {
            "sub": self.subject,
            "name": self.name,
            "preferred_username": self.username,
            "org": self.org,
            "roles": [self.role],
        }


# Officers' names per bank; a bank without one here gets a generic officer, so adding a demo
# bank never leaves it without a way to sign in.
_BANK_OFFICERS = {
    "icbc-binjiang": ("wangjianguo", "王建国"),
    "hzub-binjiang": ("zhaomin", "赵敏"),
    "hzbank-binjiang": ("zhoulicheng", "周立诚"),
}


def demo_accounts(banks: dict[str, str]) -> tuple[StaffAccount, ...]:
    """The accounts for the given banks (`{bank_id: display name}`)."""
    accounts = [
        StaffAccount("gov-0001", "chensiyuan", "陈思远", GOVERNMENT, GOVERNMENT_LABEL, "operator"),
        StaffAccount("gov-0002", "linxiaowen", "林晓雯", GOVERNMENT, GOVERNMENT_LABEL, "viewer"),
    ]
    for number, (bank_id, label) in enumerate(banks.items(), start=1):
        username, name = _BANK_OFFICERS.get(bank_id, (f"officer-{bank_id}", f"{bank_id} 信贷员"))
        accounts.append(
            StaffAccount(f"bank-{number:04d}", username, name, bank_id, label, "operator")
        )
    return tuple(accounts)


def default_accounts() -> tuple[StaffAccount, ...]:
    # The gateway's bootstrap is where the demo banks are named; devtools may import it
    # (devtools is never imported by the platform, not the other way round).
    from gateway.bootstrap import DEMO_BANKS

    return demo_accounts(DEMO_BANKS)
