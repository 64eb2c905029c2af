"""Demo API clients for `make run`: the government portal, one client per seeded bank, the
service clients credit and policy use to read other services, and the web portal's client
(kind `portal`: it exchanges its staff users' ID tokens and gets no token of its own).

Secrets are random and stored only as hashes, so the clear secrets live in
`var/demo-credentials.json` (mode 0600). Running again keeps every client whose secret in that
file still matches, and creates or resets the others: idempotent, and the file and the
database never disagree. Needs the gateway schema migrated first.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.clients import (
    ClientKind,
    new_secret,
    secret_key_from_env,
    secret_matches,
    upsert_client,
)
from shared.db import create_engine, create_sessionmaker

DEMO_BANKS = {
    "icbc-binjiang": "ICBC Binjiang (工商银行滨江支行)",
    "hzub-binjiang": "Hangzhou United Bank Binjiang (杭州联合银行滨江支行)",
    "hzbank-binjiang": "Bank of Hangzhou Binjiang (杭州银行滨江支行)",
}
GOVERNMENT_CLIENT = "gov-portal"
# The web portal (portal/), as a relying party for staff sign-in.
PORTAL_CLIENT = "web-portal"
GOVERNMENT_SCOPES = ["scoring:read", "scoring:admin", "credit:read", "policy:read", "policy:admin"]
BANK_SCOPES = ["credit:read", "credit:decide", "scoring:read", "policy:read"]
# Which services each of our services reads directly, with a service token.
SERVICE_AUDIENCES = {
    "credit": ["scoring", "policy"],
    "policy": ["scoring", "credit"],
    "scoring": ["credit", "policy"],
}
CREDENTIALS_FILE = "demo-credentials.json"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _ensure(
    db: AsyncSession,
    key: bytes,
    known: dict[str, str],
    client_id: str,
    **fields: Any,
) -> str:
    """The client's secret: the known one if it still matches, else a new one."""
    secret = known.get(client_id)
    if not (secret and await secret_matches(db, key, client_id, secret)):
        secret = new_secret()
    await upsert_client(db, key, client_id=client_id, secret=secret, **fields)
    return secret


async def seed_demo_clients(
    database_url: str, var_dir: Path, secret_key: bytes | None = None
) -> dict[str, Any]:
    """`secret_key` is the gateway's client-secret key; by default the one it would use
    itself (GATEWAY_CLIENT_SECRET_HMAC_KEY, else the development key under var_dir)."""
    key = secret_key
    if key is None:
        key = await asyncio.to_thread(secret_key_from_env, var_dir)
    path = var_dir / CREDENTIALS_FILE
    previous = await asyncio.to_thread(_load, path)
    known: dict[str, str] = {}
    gov = previous.get("government")
    if isinstance(gov, dict):
        known[str(gov.get("client_id"))] = str(gov.get("client_secret"))
    for bank in previous.get("banks") or []:
        if isinstance(bank, dict):
            known[str(bank.get("client_id"))] = str(bank.get("client_secret"))
    for svc in (previous.get("services") or {}).values():
        if isinstance(svc, dict):
            known[str(svc.get("client_id"))] = str(svc.get("client_secret"))
    portal = previous.get("portal")
    if isinstance(portal, dict):
        known[str(portal.get("client_id"))] = str(portal.get("client_secret"))

    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as db:
            result: dict[str, Any] = {}
            result["government"] = {
                "client_id": GOVERNMENT_CLIENT,
                "client_secret": await _ensure(
                    db,
                    key,
                    known,
                    GOVERNMENT_CLIENT,
                    name="Binjiang high-tech zone portal (滨江高新区)",
                    kind=ClientKind.GOVERNMENT,
                    scopes=GOVERNMENT_SCOPES,
                ),
            }
            result["banks"] = []
            for bank_id, name in DEMO_BANKS.items():
                client_id = f"bank-{bank_id}"
                secret = await _ensure(
                    db,
                    key,
                    known,
                    client_id,
                    name=name,
                    kind=ClientKind.BANK,
                    bank_id=bank_id,
                    scopes=BANK_SCOPES,
                )
                result["banks"].append(
                    {"bank_id": bank_id, "client_id": client_id, "client_secret": secret}
                )
            result["services"] = {}
            for service, audiences in SERVICE_AUDIENCES.items():
                client_id = f"svc-{service}"
                secret = await _ensure(
                    db,
                    key,
                    known,
                    client_id,
                    name=f"The {service} service",
                    kind=ClientKind.SERVICE,
                    scopes=[],
                    audiences=audiences,
                )
                result["services"][service] = {"client_id": client_id, "client_secret": secret}
            result["portal"] = {
                "client_id": PORTAL_CLIENT,
                "client_secret": await _ensure(
                    db,
                    key,
                    known,
                    PORTAL_CLIENT,
                    name="Web portal (staff sign-in)",
                    kind=ClientKind.PORTAL,
                    scopes=[],
                ),
            }
            await db.commit()
    finally:
        await engine.dispose()

    await asyncio.to_thread(_write_private, path, result)
    return result


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    tmp.replace(path)
