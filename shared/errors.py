"""Problem details (RFC 9457) for every error a component returns.

One exception base, `ProblemError`, carries the status, a stable `type` and a title; the
handlers turn it, request-validation errors and unexpected exceptions into
`application/problem+json`. Bad input is always a 4xx: only a bug reaches the 500 handler,
and that answer never leaks internals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logging import current_request_id, request_id_of

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://innovation-points.dev/problems/"

log = structlog.get_logger("errors")


class Problem(BaseModel):
    """The RFC 9457 body; extension members are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None


class ProblemError(Exception):
    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        return TYPE_BASE + self.slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class BadRequest(ProblemError):
    pass


class Unauthorized(ProblemError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extensions)


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    slug = "invalid-transition"
    title = "Transition not allowed"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class Unprocessable(ProblemError):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"


class TooManyRequests(ProblemError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class UpstreamError(ProblemError):
    status = 502
    slug = "bad-gateway"
    title = "Upstream error"


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class UpstreamTimeout(ProblemError):
    status = 504
    slug = "gateway-timeout"
    title = "Upstream timed out"


def problem_response(
    status: int,
    body: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    rid = current_request_id()
    if rid and "request_id" not in body:
        body = {**body, "request_id": rid}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.body(request.url.path), exc.headers)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = Unprocessable("Some fields are missing or malformed").body(request.url.path)
    body["errors"] = _validation_errors(exc.errors())
    return problem_response(422, body)


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    body = {
        "type": TYPE_BASE + slug,
        "title": str(exc.detail) if exc.detail else slug.replace("-", " ").capitalize(),
        "status": exc.status_code,
        "instance": request.url.path,
    }
    return problem_response(exc.status_code, body, exc.headers)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers an unhandled exception from its outermost middleware, outside the
    # request-id middleware: by now the id's context variable is reset and this answer will
    # not pass through that middleware's send. The id is still in the request's scope state
    # (the middleware put it there), so the body and the header both carry it here.
    rid = current_request_id() or request_id_of(request.scope)
    log.exception("unhandled error", path=request.url.path, request_id=rid, exc_info=exc)
    body = {
        "type": TYPE_BASE + "internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "An unexpected error occurred; quote the request id when reporting it.",
        "instance": request.url.path,
        "request_id": rid,
    }
    return problem_response(500, body, {"X-Request-ID": rid})


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: SQLAlchemy's `orig`, then Python's `__cause__`."""
    cause: BaseException | None = exc
    while cause is not None:
        yield cause
        cause = getattr(cause, "orig", None) or cause.__cause__


def _unstorable_input(exc: BaseException) -> bool:
    """A value the database cannot take as given: an integer beyond its column's range
    (asyncpg refuses to encode the argument) or text PostgreSQL cannot hold (NUL bytes,
    unpaired surrogates)."""
    import asyncpg.exceptions as pg

    return any(
        isinstance(c, pg.UntranslatableCharacterError | pg.CharacterNotInRepertoireError)
        # asyncpg's own argument check; a TypeError under it would be our bug, not input.
        or (type(c) is pg.DataError and isinstance(c.__cause__, OverflowError))
        for c in _causes(exc)
    )


def _database_unreachable(exc: BaseException) -> bool:
    """The database is down, restarting or cut the connection: nothing the request did."""
    import asyncpg.exceptions as pg
    from sqlalchemy.exc import DBAPIError

    return any(
        (isinstance(c, DBAPIError) and c.connection_invalidated)
        or isinstance(c, OSError | pg.PostgresConnectionError | pg.OperatorInterventionError)
        for c in _causes(exc)
    )


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Found by the reliability suite. While PostgreSQL restarts, requests failed as 500
    # "unhandled error" and, re-raised to the server, also cost the caller its connection:
    # a 503 problem tells it to come back shortly. Values the database cannot store (found
    # by contract fuzzing: they came back as 500s) are the caller's mistake: 422. Anything
    # else stays a 500.
    if _database_unreachable(exc):
        log.warning("database unreachable", path=request.url.path, error=repr(exc)[:200])
        problem = ServiceUnavailable("The database is unreachable; try again shortly")
        return problem_response(503, problem.body(request.url.path), {"Retry-After": "1"})
    if not _unstorable_input(exc):
        return await _unexpected_handler(request, exc)
    log.warning("unstorable input", path=request.url.path, error=str(exc).splitlines()[0])
    body = Unprocessable("A value is out of range or holds characters that cannot be stored")
    return problem_response(422, body.body(request.url.path))


def install_problem_handlers(app: FastAPI) -> None:
    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(ProblemError, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    # asyncpg's connect raises these unwrapped when the server (or its socket) is gone.
    app.add_exception_handler(OSError, _database_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: documents its problem answers in OpenAPI."""
    return {
        s: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "Problem"}
        for s in statuses
    }
