"""The platform's components, for the scripts that migrate, run and benchmark them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Component:
    name: str
    factory: str  # uvicorn --factory target
    port: int
    schema: str | None
    migrations_module: str | None  # module with a MIGRATIONS path

    def migrations_dir(self) -> Path | None:
        if self.migrations_module is None:
            return None
        return Path(importlib.import_module(self.migrations_module).MIGRATIONS)

    def available(self) -> bool:
        try:
            importlib.import_module(self.factory.split(":")[0])
        except ModuleNotFoundError:
            return False
        return True


COMPONENTS: tuple[Component, ...] = (
    Component("gateway", "gateway.app:create_app", 8000, "gateway", "gateway.app"),
    Component(
        "scoring", "services.scoring.app:create_app", 8001, "scoring", "services.scoring.app"
    ),
    Component("credit", "services.credit.app:create_app", 8002, "credit", "services.credit.app"),
    Component("policy", "services.policy.app:create_app", 8003, "policy", "services.policy.app"),
    # Development only (devtools/): a production image may leave it out, and then
    # `available()` is false and the launcher skips it.
    Component("idp", "devtools.idp.app:create_app", 8009, None, None),
    Component("portal", "portal.app:create_app", 8010, "portal", "portal.app"),
)
