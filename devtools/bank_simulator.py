"""A bank system's webhook receiver, as a bank would write it: for tests and `make run`.

It verifies every notification with the Standard Webhooks reference library (signature over
`id.timestamp.body` with the bank's secret, timestamp within five minutes), refuses what
fails with 401, acknowledges duplicates of a `webhook-id` without recording them twice, and
can be told to fail the next N deliveries so retries can be watched.

    python -m devtools.bank_simulator --port 8090 \\
        --secret icbc-binjiang=whsec_... --secret hzbank-binjiang=whsec_...
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class BankInbox:
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    rejected: int = 0
    duplicates: int = 0
    fail_next: int = 0


def create_bank_simulator(secrets: dict[str, str]) -> FastAPI:
    app = FastAPI(title="Bank webhook receiver (simulator)")
    inboxes = {bank: BankInbox(secret) for bank, secret in secrets.items()}
    app.state.inboxes = inboxes

    @app.post("/webhooks/{bank_id}")
    async def receive(bank_id: str, request: Request) -> Response:
        inbox = inboxes.get(bank_id)
        if inbox is None:
            return JSONResponse({"error": "unknown bank"}, status_code=404)
        body = await request.body()
        try:
            event = Webhook(inbox.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            inbox.rejected += 1
            return JSONResponse({"error": str(exc)}, status_code=401)
        if inbox.fail_next > 0:
            inbox.fail_next -= 1
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        msg_id = request.headers["webhook-id"]
        if msg_id in inbox.seen_ids:
            inbox.duplicates += 1
        else:
            inbox.seen_ids.add(msg_id)
            inbox.received.append(event)
        return Response(status_code=204)

    @app.get("/webhooks/{bank_id}")
    async def received(bank_id: str) -> JSONResponse:
        inbox = inboxes.get(bank_id)
        if inbox is None:
            return JSONResponse({"error": "unknown bank"}, status_code=404)
        return JSONResponse(
            {
                "received": inbox.received,
                "rejected": inbox.rejected,
                "duplicates": inbox.duplicates,
            }
        )

    @app.post("/webhooks/{bank_id}/fail-next/{count}")
    async def fail_next(bank_id: str, count: int) -> Response:
        inboxes[bank_id].fail_next = count
        return Response(status_code=204)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", action="append", default=[], help="bank_id=whsec_...")
    args = parser.parse_args()
    secrets = dict(s.split("=", 1) for s in args.secret)
    uvicorn.run(create_bank_simulator(secrets), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
