"""The component registry (shared/components.py) agrees with the code it names."""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from shared.components import COMPONENTS, METRICS_PORT_STEP, UPSTREAMS, load

ROOT = Path(__file__).resolve().parents[2]


def test_every_entry_names_real_code_with_its_own_prefix() -> None:
    assert len({c.name for c in COMPONENTS}) == len(COMPONENTS)
    assert len({c.port for c in COMPONENTS}) == len(COMPONENTS)
    for comp in COMPONENTS:
        assert comp.available(), comp.name
        assert callable(load(comp.factory)), comp.name
        settings = load(comp.settings)
        assert isinstance(settings, type) and issubclass(settings, BaseSettings)
        assert settings.model_config.get("env_prefix") == comp.env_prefix, comp.name
        directory = comp.migrations_dir()
        assert (directory is None) == (comp.schema is None), comp.name
        if directory is not None:
            assert (directory / "versions").is_dir(), comp.name
        if comp.metrics_port is not None:
            assert comp.metrics_port == comp.port + METRICS_PORT_STEP
            assert "metrics_port" in settings.model_fields, comp.name


def test_the_gateway_has_a_url_setting_for_every_upstream() -> None:
    """`/v1/<name>/X` is proxied for every upstream of the registry: each needs its address
    (`GATEWAY_<NAME>_URL`), defaulting to the component's host name."""
    assert UPSTREAMS == ("scoring", "credit", "policy")
    for name in UPSTREAMS:
        field = GatewaySettings.model_fields[f"{name}_url"]
        assert field.default == f"http://{name}"


def test_shared_imports_no_component() -> None:
    """Shared is infrastructure: the registry names the components in strings only."""
    tree = ast.parse((ROOT / "shared" / "components.py").read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    components = {c.app.split(".")[0] for c in COMPONENTS}
    assert not [m for m in imported if m.split(".")[0] in components]
