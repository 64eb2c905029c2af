"""Development token CLI: mint an internal token for any principal from a local key.

    ip-token keygen                      # create var/keys/issuer.json if missing
    ip-token jwks                        # print the public JWKS
    ip-token mint --kind government --aud scoring
    ip-token mint --kind enterprise --uscc 91330106MA2HXFY97H --aud scoring
    ip-token mint --kind bank --bank-id icbc-binjiang --aud credit --scope credit:decide

It refuses to run when ENVIRONMENT (or any *_ENVIRONMENT) says production: in production only
the gateway issues tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shared.auth.keys import load_or_create_key_set, public_jwks
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenIssuer

DEFAULT_KEY_FILE = Path("var/keys/issuer.json")
DEFAULT_ISSUER = "innovation-points-gateway"


def _in_production() -> bool:
    return any(
        v.strip().lower() == "production"
        for k, v in os.environ.items()
        if k == "ENVIRONMENT" or k.endswith("_ENVIRONMENT")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ip-token", description=__doc__.split("\n")[0])
    parser.add_argument("--key-file", type=Path, default=DEFAULT_KEY_FILE)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keygen")
    sub.add_parser("jwks")
    mint = sub.add_parser("mint")
    mint.add_argument("--kind", choices=[k.value for k in PrincipalKind], required=True)
    mint.add_argument("--aud", required=True, help="the service: scoring, credit, policy")
    mint.add_argument("--sub")
    mint.add_argument("--uscc")
    mint.add_argument("--bank-id")
    mint.add_argument("--scope", action="append", default=[])
    mint.add_argument("--act")
    mint.add_argument("--ttl", type=int, default=3600)
    mint.add_argument("--issuer", default=DEFAULT_ISSUER)
    args = parser.parse_args(argv)

    if _in_production():
        print("ip-token: refused: production tokens come from the gateway only", file=sys.stderr)
        return 2
    key_set = load_or_create_key_set(args.key_file)
    if args.command == "keygen":
        print(args.key_file)
    elif args.command == "jwks":
        print(json.dumps(public_jwks(key_set), indent=2))
    else:
        kind = PrincipalKind(args.kind)
        sub_default = args.uscc or args.bank_id or f"dev-{kind.value}"
        try:
            principal = Principal(
                sub=args.sub or sub_default,
                kind=kind,
                uscc=args.uscc,
                bank_id=args.bank_id,
                scopes=args.scope,
                act=args.act,
            )
        except ValueError as exc:
            print(f"ip-token: {exc}", file=sys.stderr)
            return 2
        print(TokenIssuer(key_set, args.issuer).mint(principal, args.aud, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
