"""Registering API clients in a deployment (the government portal, bank systems, our services,
the web portal as the relying party of staff sign-in).

    python -m gateway.clients_cli create gov-portal --kind government --name "Portal" \\
        --scope scoring:admin --scope policy:admin
    python -m gateway.clients_cli create bank-icbc --kind bank --bank-id icbc-binjiang \\
        --name "ICBC Binjiang" --scope credit:decide
    python -m gateway.clients_cli create svc-credit --kind service --name credit \\
        --audience scoring --audience policy
    python -m gateway.clients_cli create web-portal --kind portal --name "Web portal"
    python -m gateway.clients_cli rotate bank-icbc       # prints the new secret once
    python -m gateway.clients_cli disable bank-icbc
    python -m gateway.clients_cli list

The database comes from GATEWAY_DATABASE_URL (or DATABASE_URL), the client-secret key from
GATEWAY_CLIENT_SECRET_HMAC_KEY (the gateway's; in development the key file under GATEWAY_VAR_DIR,
default var/). A secret is generated here, printed once as JSON and stored only as its keyed
digest: keep it in the client's secret store.

Rotating or disabling ends the client's gateway tokens on every replica's next revocation
poll. Internal tokens a service client already holds are not revocable (services do not
consult the revocation list): they end on their own within GATEWAY_SERVICE_TOKEN_TTL (60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.auth.clients import ClientKind, new_secret, secret_key_from_env, upsert_client
from gateway.auth.identity import client_revocation_id
from gateway.models import Client, Revocation
from shared.db import create_engine, create_sessionmaker

# Longer than any client token lives (GATEWAY_CLIENT_TOKEN_TTL, 10 minutes by default).
REVOCATION_HORIZON = timedelta(days=1)


async def run(
    database_url: str, args: argparse.Namespace, key: bytes | None = None
) -> dict[str, Any]:
    if key is None and args.command in ("create", "rotate"):
        # Never invented here: a key the gateway does not share would make useless secrets.
        var_dir = Path(os.environ.get("GATEWAY_VAR_DIR", "var"))
        key = secret_key_from_env(var_dir, create=False)
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            if args.command == "list":
                rows = await db.scalars(select(Client).order_by(Client.client_id))
                return {
                    "clients": [
                        {
                            "client_id": c.client_id,
                            "kind": c.kind,
                            "name": c.name,
                            "bank_id": c.bank_id,
                            "scopes": c.scopes,
                            "audiences": c.audiences,
                            "disabled": c.disabled_at is not None,
                        }
                        for c in rows
                    ]
                }
            existing = await db.get(Client, args.client_id)
            if args.command == "create":
                if existing is not None:
                    raise SystemExit(f"client {args.client_id} exists; use rotate")
                kind = ClientKind(args.kind)
                if (kind is ClientKind.BANK) != bool(args.bank_id):
                    raise SystemExit("--bank-id is required for, and only for, a bank client")
                if kind is ClientKind.PORTAL and (args.scope or args.audience):
                    raise SystemExit(
                        "a portal client has no scopes or audiences: its users' roles decide"
                    )
                secret = new_secret()
                assert key is not None
                await upsert_client(
                    db,
                    key,
                    client_id=args.client_id,
                    name=args.name,
                    kind=kind,
                    secret=secret,
                    scopes=args.scope,
                    bank_id=args.bank_id,
                    audiences=args.audience,
                )
                return {"client_id": args.client_id, "client_secret": secret}
            if existing is None:
                raise SystemExit(f"no client {args.client_id}")
            # Tokens the client already holds end too, on every gateway replica's next poll.
            db.add(
                Revocation(
                    token_id=client_revocation_id(existing.client_id),
                    expires_at=datetime.now(UTC) + REVOCATION_HORIZON,
                )
            )
            if args.command == "rotate":
                secret = new_secret()
                assert key is not None
                await upsert_client(
                    db,
                    key,
                    client_id=existing.client_id,
                    name=existing.name,
                    kind=ClientKind(existing.kind),
                    secret=secret,
                    scopes=list(existing.scopes),
                    bank_id=existing.bank_id,
                    audiences=list(existing.audiences),
                )
                return {"client_id": existing.client_id, "client_secret": secret}
            existing.disabled_at = datetime.now(UTC)
            return {"client_id": existing.client_id, "disabled": True}
    finally:
        await engine.dispose()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gateway.clients_cli", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("client_id")
    create.add_argument("--kind", required=True, choices=[k.value for k in ClientKind])
    create.add_argument("--name", required=True)
    create.add_argument("--bank-id")
    create.add_argument("--scope", action="append", default=[])
    create.add_argument("--audience", action="append", default=[])
    for name in ("rotate", "disable"):
        sub.add_parser(name).add_argument("client_id")
    sub.add_parser("list")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    url = os.environ.get("GATEWAY_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        print("set GATEWAY_DATABASE_URL (or DATABASE_URL)", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(run(url, args)), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
