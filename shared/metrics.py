"""Prometheus metrics: request rate, errors and duration per route, served on an internal
port.

`/metrics` is not on a component's public port (issue 10: the gateway's served it to anyone):
`serve_metrics` starts prometheus-client's own small HTTP server on `METRICS_PORT`, which only
the monitoring network reaches (Kubernetes: the NetworkPolicy admits Prometheus to that port
alone, and no Service or Ingress names it; compose and `make run` do not publish it). A
separate port rather than a scrape credential: nothing to hand out or rotate, and a mistake
in an ingress rule cannot expose it.

Labels use the route template (`/v1/enterprises/{uscc}/score`), never the raw path, so an
enterprise's code never becomes a label and cardinality stays bounded.

The metric types come from prometheus-client; the middleware is ours because it is forty
lines of pure ASGI (no `BaseHTTPMiddleware` on the hot path) that share one registry with
the batch-job, feed-lag, outbox and circuit gauges below, where prometheus-fastapi-
instrumentator would add a dependency and its own registry handling for the same counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "http_requests_total", "HTTP requests", ["component", "method", "route", "status"]
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["component", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Batch job duration (evaluations, recomputations)",
    ["component", "job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
# Per consumer (`component` = the consuming service, `feed` = its cursor): event ids between
# its cursor and the producer's newest event, 0 once it has caught up (shared.feed.feed_lag).
FEED_LAG = Gauge(
    "event_feed_lag",
    "Event ids between a consumer's cursor and the producer's newest event (0: caught up)",
    ["component", "feed"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox messages not yet delivered", ["component"])
CIRCUIT_STATE = Gauge(
    "upstream_circuit_state",
    "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
    ["component", "upstream"],
)


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The template of the route that answered (`scope["route"]`), else of the first that
    matches, else `unmatched`."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template:
        return str(template)
    router = getattr(app, "router", None)
    for candidate in getattr(router, "routes", []):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


class _Series:
    """The per-label children of the two request metrics, looked up once per label set.

    prometheus-client's `labels()` stringifies the values and takes a lock on every call;
    the children it returns live as long as the registry (nothing here removes a series),
    so keeping them is the same series, found faster on the hot path.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, component: str, method: str, route: str, status: int, seconds: float) -> None:
        key = (component, method, route, status)
        found = self._children.get(key)
        if found is None:
            found = (
                REQUESTS.labels(component, method, route, str(status)),
                DURATION.labels(component, method, route),
            )
            self._children[key] = found
        found[0].inc()
        found[1].observe(seconds)


_SERIES = _Series()


def observe_request(component: str, method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration (what `MetricsMiddleware` records)."""
    _SERIES.observe(component, method, route, status, seconds)


class MetricsMiddleware:
    """Request metrics alone (the portal's; services have them in
    `shared.app.ServiceMiddleware`)."""

    def __init__(self, app: ASGIApp, component: str, root: ASGIApp | None = None) -> None:
        self.app = app
        self.component = component
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(self.root or self.app, scope)
            observe_request(
                self.component,
                scope.get("method", "GET"),
                template,
                status,
                time.perf_counter() - start,
            )


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve the process's metrics on `host:port` from a daemon thread; returns its stop."""
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
