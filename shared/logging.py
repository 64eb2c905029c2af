"""Structured logs carrying the request id.

The request id comes from a well-formed `X-Request-ID` (the gateway creates one for every
public request and forwards it) or is created here; it is bound into a context variable so
every log line of the request carries it, and it is echoed in the response. A pure ASGI
middleware rather than `BaseHTTPMiddleware`, which costs throughput on the hot path.

Before a line is rendered, `redact` masks every unified social credit code (an enterprise's
USCC may only be seen in full by that enterprise and the government, and log readers are
neither) and blanks the values of keys that name secrets. Standard-library records (uvicorn,
SQLAlchemy, Alembic) go through the same processors, so no line escapes the masking.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def well_formed_request_id(value: str | None) -> str | None:
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(scope: Scope) -> str:
    """The id `RequestIdMiddleware` gave this request (kept in the scope's state, which
    outlives the middleware's context variable); a new one if it never ran."""
    state = scope.get("state") or {}
    rid = state.get("request_id")
    if not isinstance(rid, str):
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
    return rid


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    rid = _request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


# GB 32100-2015: registration authority and type (2 characters), region (6 digits),
# organisation code (9 characters) and check character. The look-arounds keep hex request
# ids and other long tokens from being mistaken for a code.
USCC_IN_TEXT = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-HJ-NPQRTUWXY]{2}\d{4})(\d{2}[0-9A-HJ-NPQRTUWXY]{8})"
    r"([0-9A-HJ-NPQRTUWXY]{2})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
# A key whose name contains one of these holds a secret: its value never reaches a line.
# Matching by substring over-redacts (`token_url`), which is the cheap side to err on.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "signature",
)
REDACTED = "[REDACTED]"
# Credentials that turn up inside free text (an exception message, a header dump).
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def mask_uscc(text: str) -> str:
    """`91330106MA2HXFY97H` -> `913301**********7H`: enough to tell lines apart, not to
    identify the enterprise."""
    return USCC_IN_TEXT.sub(lambda m: m.group(1) + "*" * 10 + m.group(3), text)


def _is_secret_key(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    return any(part in name for part in SECRET_KEY_PARTS)


def _scrub_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return mask_uscc(_JWT.sub(REDACTED, text))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Anything else is rendered with str() by the renderers: scrub that text instead.
    return _scrub_text(str(value))


def redact(_: Any, __: str, event: EventDict) -> EventDict:
    """structlog processor: USCCs masked everywhere, secret-named keys blanked."""
    return {k: REDACTED if _is_secret_key(k) else _scrub(v) for k, v in event.items()}


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: exception text may quote a code too.
        redact,
    ]


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we install, so configuring again replaces it instead of adding."""


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Standard-library records (uvicorn, SQLAlchemy, Alembic) through the same processors.
    pre_chain = [structlog.stdlib.add_logger_name, *_processors()[:-2]]
    handler = _StdlibHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # Others' handlers stay (pytest's capture); only ours is replaced.
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    # The root level stays as it is (WARNING): httpx and others log every request at INFO.
    root.addHandler(handler)
    # uvicorn gives its loggers handlers of their own that would print unmasked lines.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # `--no-access-log` leaves uvicorn.access with neither handler nor propagation, and
        # uvicorn decides per connection by `hasHandlers()`: propagating it to the root's
        # handler would log every request after all.
        switched_off = name == "uvicorn.access" and not logger.handlers and not logger.propagate
        logger.handlers.clear()
        logger.propagate = not switched_off


def bind_request_id(scope: Scope) -> tuple[str, Token[str | None]]:
    """The request's id (its well-formed `X-Request-ID`, else a new one), bound for every log
    line of the request and kept in the scope's state (`request_id_of`). Undo with
    `unbind_request_id` once the request is answered."""
    incoming = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            break
    rid = well_formed_request_id(incoming) or new_request_id()
    scope.setdefault("state", {})["request_id"] = rid
    return rid, _request_id.set(rid)


def unbind_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def with_request_id(headers: list[tuple[bytes, bytes]], rid: bytes) -> list[tuple[bytes, bytes]]:
    """The response's headers with ours as the only `x-request-id`."""
    out = [(k, v) for k, v in headers if k != b"x-request-id"]
    out.append((b"x-request-id", rid))
    return out


class RequestIdMiddleware:
    """The request id alone (the portal's; services have it in `shared.app.ServiceMiddleware`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, token = bind_request_id(scope)
        rid_bytes = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_request_id(message.get("headers", []), rid_bytes)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            unbind_request_id(token)
