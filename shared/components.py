"""The platform's components, written once.

Everything that walks the components reads this registry: the scripts that migrate, run and
benchmark them (`scripts/launcher.py`, `scripts/migrate.py`), the configuration reference
(`scripts/config_reference.py`), the in-process platform of the tests (`tests/platform.py`),
the deployment tests (`tests/deploy/`) and the gateway, which proxies every `upstream`.
Adding a service is one entry here (then its code, its manifests and its settings).

Shared is infrastructure: it names the components and their ports but imports none of
them. Modules are dotted strings, imported only when a caller asks (`load`, `available`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Each component's Prometheus metrics are served on its port + this (8100 for 8000),
# never on the public port.
METRICS_PORT_STEP = 100


def load(ref: str) -> Any:
    """The object a `"module:attribute"` reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Component:
    # Also its host name (compose, Kubernetes, the tests' in-process platform) and, upper
    # case, its settings' environment prefix.
    name: str
    port: int
    # The package with `create_app(settings, overrides)`.
    app: str
    # `"module:Class"` of its settings.
    settings: str
    # What it is, in a few words (the configuration reference's headings).
    description: str
    # Its PostgreSQL schema and `"module:ATTR"` of its Alembic directory; None: no database.
    schema: str | None = None
    migrations: str | None = None
    # Proxied by the gateway: `/v1/<name>/X` reaches its `/v1/X`.
    upstream: bool = False
    # Reached from outside the platform (through the Ingress); everything else is internal.
    public: bool = False
    # Development only (devtools/): never deployed to production, and a production image may
    # leave it out (then `available()` is false and the launcher skips it).
    development_only: bool = False

    @property
    def factory(self) -> str:
        """The `uvicorn --factory` target."""
        return f"{self.app}:create_app"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def metrics_port(self) -> int | None:
        """Where it serves Prometheus metrics; the development provider serves none."""
        return None if self.development_only else self.port + METRICS_PORT_STEP

    @property
    def ready_path(self) -> str:
        """`/readyz` checks the database and migrations; without a database, liveness."""
        return "/readyz" if self.schema else "/healthz"

    def migrations_dir(self) -> Path | None:
        return None if self.migrations is None else Path(load(self.migrations))

    def available(self) -> bool:
        """Whether its code is installed (a production image may leave devtools/ out)."""
        try:
            importlib.import_module(self.app)
        except ModuleNotFoundError:
            return False
        return True


COMPONENTS: tuple[Component, ...] = (
    Component(
        "gateway",
        8000,
        "gateway.app",
        "gateway.settings:GatewaySettings",
        "the public entry",
        schema="gateway",
        migrations="gateway.app:MIGRATIONS",
        public=True,
    ),
    Component(
        "scoring",
        8001,
        "services.scoring.app",
        "services.scoring.settings:ScoringSettings",
        "the scoring service",
        schema="scoring",
        migrations="services.scoring.app:MIGRATIONS",
        upstream=True,
    ),
    Component(
        "credit",
        8002,
        "services.credit.app",
        "services.credit.settings:CreditSettings",
        "the credit service",
        schema="credit",
        migrations="services.credit.app:MIGRATIONS",
        upstream=True,
    ),
    Component(
        "policy",
        8003,
        "services.policy.app",
        "services.policy.settings:PolicySettings",
        "the policy service",
        schema="policy",
        migrations="services.policy.app:MIGRATIONS",
        upstream=True,
    ),
    Component(
        "portal",
        8010,
        "portal.app",
        "portal.settings:PortalSettings",
        "the web portal",
        schema="portal",
        migrations="portal.app:MIGRATIONS",
        public=True,
    ),
    Component(
        "idp",
        8009,
        "devtools.idp.app",
        "devtools.idp.settings:IdpSettings",
        "the development identity provider; never in production",
        development_only=True,
    ),
)

BY_NAME: dict[str, Component] = {c.name: c for c in COMPONENTS}
# The services the gateway proxies, in registry order.
UPSTREAMS: tuple[str, ...] = tuple(c.name for c in COMPONENTS if c.upstream)


def component(name: str) -> Component:
    return BY_NAME[name]
