"""The deployment files, validated statically (no Docker engine or cluster runs here).

Kustomize is rendered by a small implementation of the subset our kustomizations use
(`resources`, `namespace`, `images`, strategic-merge `patches` with the list merge keys of
the fields we patch, `$patch: delete`): no PyPI package renders kustomize (the one named
`kustomize` only writes kustomization files from Python). Where `kubectl` is installed its
built-in kustomize renders the same directories and the two must agree, which keeps this
subset honest. Every rendered resource is validated against the Kubernetes OpenAPI schema
(kubernetes-validate bundles the schemas, so it works offline), strictly: unknown fields
fail.
"""

from __future__ import annotations

import ast
import copy
import importlib.resources
import ipaddress
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.components import COMPONENTS, component

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
PRODUCTION = DEPLOY / "k8s" / "overlays" / "production"
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "innovation-points"

PORTS = {c.name: c.port for c in COMPONENTS}
# Autoscaled, in production too; the development provider is one replica and never there.
SCALED = tuple(c.name for c in COMPONENTS if not c.development_only)
# Metrics are served on a port of their own, never the public one (issue 10).
METRICS_PORTS = {c.name: c.metrics_port for c in COMPONENTS if c.metrics_port is not None}
# Reached from outside, each through its own Ingress host: the gateway and the portal.
PUBLIC = {c.name for c in COMPONENTS if c.public}
# The paths each public component's Ingress routes: the API, the portal's pages. Probes and
# metrics stay inside.
PUBLIC_PATHS = {
    "gateway": {"/v1", "/.well-known", "/docs", "/openapi.json"},
    "portal": {"/", "/auth", "/e", "/gov", "/bank", "/static"},
}
# Components with a database role of their own (rights on their schema alone).
OWN_DATABASE_SECRET = {"portal": ("innovation-points-portal", "database-url")}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# patchMergeKey of the lists we patch (from the Kubernetes API types); other lists replace.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}

Resource = dict[str, Any]


# --- a minimal kustomize ---------------------------------------------------------------


def _load_all(path: Path) -> list[Resource]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(target: Any, patch: Any, key: str | None = None) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        out = dict(target)
        for k, v in patch.items():
            out[k] = _merge(target[k], v, k) if k in target else copy.deepcopy(v)
        return out
    if isinstance(target, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        patched = {item[mk]: item for item in patch}
        existing = {item[mk] for item in target}
        # Like kustomize: items new to the list come first, existing ones merge in place.
        new = [copy.deepcopy(item) for item in patch if item[mk] not in existing]
        merged = [
            _merge(item, patched[item[mk]], None) if item[mk] in patched else item
            for item in target
        ]
        return new + merged
    return copy.deepcopy(patch)


def _matches(resource: Resource, patch: Resource) -> bool:
    return bool(
        resource["kind"] == patch["kind"]
        and resource["metadata"]["name"] == patch["metadata"]["name"]
        and resource["apiVersion"].split("/")[0] == patch["apiVersion"].split("/")[0]
    )


def _apply_patch(resources: list[Resource], patch: Resource) -> list[Resource]:
    targets = [r for r in resources if _matches(r, patch)]
    assert len(targets) == 1, f"patch matches {len(targets)} resources: {patch['metadata']}"
    if patch.get("$patch") == "delete":
        return [r for r in resources if r is not targets[0]]
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    return [_merge(r, body) if r is targets[0] else r for r in resources]


def _set_images(resource: Resource, images: list[dict[str, str]]) -> None:
    spec = resource.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        name = container["image"].split(":")[0]
        for image in images:
            if image["name"] == name:
                tag = image.get("newTag") or (container["image"].partition(":")[2] or None)
                container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")


def render(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else _load_all(path)
    for item in kustomization.get("patches", []):
        docs = (
            _load_all(directory / item["path"])
            if "path" in item
            else [d for d in yaml.safe_load_all(item["patch"]) if d]
        )
        for doc in docs:
            resources = _apply_patch(resources, doc)
    if "namespace" in kustomization:
        for r in resources:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = kustomization["namespace"]
    for r in resources:
        _set_images(r, kustomization.get("images", []))
    return resources


def kubectl_render(directory: Path) -> list[Resource]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(BASE)


@pytest.fixture(scope="module")
def production() -> list[Resource]:
    return render(PRODUCTION)


def of_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def containers(deployment: Resource) -> list[Resource]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def env_names(container: Resource) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def _key(r: Resource) -> tuple[str, str]:
    return (r["kind"], r["metadata"]["name"])


# --- rendering and schema --------------------------------------------------------------


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_subset_renders_what_kubectl_kustomize_renders(directory: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: the Python rendering is checked on its own")
    ours = {_key(r): r for r in render(directory)}
    theirs = {_key(r): r for r in kubectl_render(directory)}
    assert ours.keys() == theirs.keys()
    for key, resource in ours.items():
        assert json.loads(json.dumps(resource)) == theirs[key], key


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_every_resource_matches_the_kubernetes_schema(
    overlay: str, base: list[Resource], production: list[Resource]
) -> None:
    resources = base if overlay == "base" else production
    assert resources
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{_key(resource)}: {exc.message} at {list(exc.path)}")


def test_a_broken_manifest_is_caught_by_the_schema() -> None:
    deployment = copy.deepcopy(of_kind(render(BASE), "Deployment")["gateway"])
    containers(deployment)[0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- the properties ----------------------------------------------------------------------


def deployments_of(resources: list[Resource]) -> Iterator[tuple[str, Resource]]:
    yield from of_kind(resources, "Deployment").items()


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_every_deployment_is_probed_bounded_and_unprivileged(
    overlay: str, base: list[Resource], production: list[Resource]
) -> None:
    resources = base if overlay == "base" else production
    services = of_kind(resources, "Service")
    for name, deployment in deployments_of(resources):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = containers(deployment)
        port = PORTS[name]
        expected = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        if name in METRICS_PORTS:
            metrics = METRICS_PORTS[name]
            expected.append({"name": "metrics", "containerPort": metrics, "protocol": "TCP"})
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(metrics)
        assert container["ports"] == expected
        assert f"--port={port}" in "=".join(container["command"]).replace("=--port=", "--port=")
        ready = component(name).ready_path
        assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
        # The Service offers the public port alone: nothing routes to the metrics port.
        assert [p["port"] for p in services[name]["spec"]["ports"]] == [port]
        assert services[name]["spec"]["type"] == "ClusterIP"


def test_an_autoscaler_targets_the_gateway_and_each_service(
    base: list[Resource], production: list[Resource]
) -> None:
    for resources in (base, production):
        hpas = of_kind(resources, "HorizontalPodAutoscaler")
        targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
        assert targets == set(SCALED)
        for hpa in hpas.values():
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        # The autoscaler owns the count: a `replicas` would be reset by every apply.
        for name, deployment in deployments_of(resources):
            if name in SCALED:
                assert "replicas" not in deployment["spec"], name
    prod = of_kind(production, "HorizontalPodAutoscaler")
    assert prod["gateway"]["spec"]["minReplicas"] >= 3
    assert all(prod[n]["spec"]["minReplicas"] >= 2 for n in SCALED)


def test_secrets_are_referenced_never_committed(
    base: list[Resource], production: list[Resource]
) -> None:
    for resources in (base, production):
        assert not of_kind(resources, "Secret")
        for cm in of_kind(resources, "ConfigMap").values():
            for key in cm["data"]:
                assert not any(w in key for w in ("SECRET", "PASSWORD", "DATABASE_URL")), key
    for name, deployment in deployments_of(production):
        (container,) = containers(deployment)
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in container.get("env", [])
            if "valueFrom" in e
        }
        secret = OWN_DATABASE_SECRET.get(name, ("innovation-points-database", "url"))[0]
        assert refs[f"{name.upper()}_DATABASE_URL"] == secret, name
    gateway = of_kind(production, "Deployment")["gateway"]
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["signing-key"]["secret"]["secretName"] == "innovation-points-signing-key"


def test_the_migration_job_runs_before_rollout(base: list[Resource]) -> None:
    job = of_kind(base, "Job")["migrate"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "scripts.migrate"]
    assert container["image"] == containers(of_kind(base, "Deployment")["scoring"])[0]["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def _selected(policy: Resource, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def ingress_sources(policies: list[Resource], component: str) -> list[tuple[Any, list[int]]]:
    labels = {"app.kubernetes.io/name": component}
    sources = []
    for policy in policies:
        if "Ingress" not in policy["spec"]["policyTypes"] or not _selected(policy, labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            for peer in rule.get("from", [{"everywhere": True}]):
                sources.append((peer, ports))
    return sources


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_only_the_gateway_and_the_portal_are_reachable_from_outside(
    overlay: str, base: list[Resource], production: list[Resource]
) -> None:
    resources = base if overlay == "base" else production
    policies = list(of_kind(resources, "NetworkPolicy").values())
    deny = of_kind(resources, "NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    callers = {
        "gateway": {"scoring", "credit", "policy", "portal"},
        "scoring": {"gateway", "credit", "policy"},
        "credit": {"gateway", "scoring"},
        "policy": {"gateway", "scoring"},
        "portal": set(),
        "idp": {"gateway", "portal"},
    }
    for name, _ in deployments_of(resources):
        outside, inside = [], set()
        for peer, ports in ingress_sources(policies, name):
            assert ports, f"{name}: a rule without ports admits every port"
            assert "ipBlock" not in peer and "everywhere" not in peer, (name, peer)
            if "namespaceSelector" in peer:
                outside.append(peer)
                # Prometheus reaches the metrics ports only; the ingress the public port only.
                is_prometheus = "podSelector" in peer
                allowed = set(METRICS_PORTS.values()) if is_prometheus else {PORTS[name]}
                assert set(ports) <= allowed, (name, peer, ports)
            else:
                inside.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
                assert ports == [PORTS[name]], (name, ports)
        assert inside == callers[name], name
        expected_outside = [prometheus] if name in SCALED else []
        if name in PUBLIC:
            ingress_nginx = {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                }
            }
            expected_outside = [ingress_nginx, prometheus]
        assert sorted(map(json.dumps, outside)) == sorted(map(json.dumps, expected_outside)), name
    assert {"gateway", "portal"} == PUBLIC
    assert routed_paths(resources) == PUBLIC_PATHS
    for service in of_kind(resources, "Service").values():
        assert service["spec"]["type"] == "ClusterIP"


def _egress_allows(policies: list[Resource], source: str, target: str, port: int) -> bool:
    labels = {"app.kubernetes.io/name": source}
    for policy in policies:
        if "Egress" not in policy["spec"]["policyTypes"] or not _selected(policy, labels):
            continue
        for rule in policy["spec"].get("egress", []):
            if port not in [p["port"] for p in rule.get("ports", [])]:
                continue
            peers = rule.get("to")
            if peers is None or any(
                peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                == target
                for peer in peers
            ):
                return True
    return False


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_every_configured_call_between_components_is_allowed_both_ways(
    overlay: str, base: list[Resource], production: list[Resource]
) -> None:
    """Each `http://<component>:<port>` a ConfigMap gives a component (the portal's gateway,
    scoring's credit and policy for the what-ifs...) passes the caller's egress and the
    callee's ingress: a call the policies forgot fails only in a cluster."""
    resources = base if overlay == "base" else production
    policies = list(of_kind(resources, "NetworkPolicy").values())
    deployed = set(of_kind(resources, "Deployment"))
    calls = set()
    for name, config in of_kind(resources, "ConfigMap").items():
        caller = name.removesuffix("-config")
        for value in config["data"].values():
            for host, port in re.findall(r"http://([a-z]+):(\d+)", value):
                if host in deployed and caller in deployed:
                    calls.add((caller, host, int(port)))
    assert ("portal", "gateway", 8000) in calls
    assert {("scoring", "credit", 8002), ("scoring", "policy", 8003)} <= calls
    for caller, callee, port in calls:
        assert _egress_allows(policies, caller, callee, port), (caller, callee, port)
        admitted = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for peer, ports in ingress_sources(policies, callee)
            if "podSelector" in peer and "namespaceSelector" not in peer and port in ports
        }
        assert caller in admitted, (caller, callee, port)


def routed_paths(resources: list[Resource]) -> dict[str, set[str]]:
    """Per backend Service, the paths the Ingresses route to it."""
    routed: dict[str, set[str]] = {}
    for ingress in of_kind(resources, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]["name"]
                assert path["backend"]["service"]["port"] == {"name": "http"}
                routed.setdefault(backend, set()).add(path["path"])
    return routed


def test_every_portal_page_is_routed_and_its_probes_are_not(base: list[Resource]) -> None:
    """Every route of the portal's routers (staff pages added later included) lies under a
    path its Ingress routes; `/healthz`, `/readyz` and `/metrics` do not."""
    import pkgutil

    import portal.routes

    (ingress,) = [i for i in of_kind(base, "Ingress").values() if i["metadata"]["name"] == "portal"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]

    def routed(url: str) -> bool:
        for p in paths:
            prefix = p["path"].rstrip("/")
            if p["pathType"] == "Exact" and url == p["path"]:
                return True
            if p["pathType"] == "Prefix" and prefix and url.split("/")[1] == prefix[1:]:
                return True
        return False

    from fastapi import APIRouter

    pages = []
    for info in pkgutil.iter_modules(portal.routes.__path__):
        module = importlib.import_module(f"portal.routes.{info.name}")
        routers = [v for v in vars(module).values() if isinstance(v, APIRouter)]
        pages += [getattr(r, "path", "") for router in routers for r in router.routes]
    assert "/" in pages and "/e/" in pages
    unrouted = [p for p in [*pages, "/static/app.css"] if not routed(p)]
    assert not unrouted
    assert not [p for p in ("/healthz", "/readyz", "/metrics") if routed(p)]


def test_forwarded_headers_are_believed_from_the_ingress_range_only(
    base: list[Resource], production: list[Resource]
) -> None:
    """The gateway and the portal, behind the ingress: the portal forwards the browser's
    address to the gateway's login limits, so it must know it and not take it from the
    browser."""
    for resources, name in itertools.product((base, production), sorted(PUBLIC)):
        (container,) = containers(of_kind(resources, "Deployment")[name])
        command = container["command"]
        assert "--proxy-headers" in command
        # Not on the command line (where '*' was): from the ConfigMap, one place to set it.
        assert "--forwarded-allow-ips" not in command
        trusted = of_kind(resources, "ConfigMap")[f"{name}-config"]["data"]["FORWARDED_ALLOW_IPS"]
        networks = [ipaddress.ip_network(n.strip()) for n in trusted.split(",")]
        assert networks and "*" not in trusted
        assert all(not n.is_global for n in networks), networks


def test_the_development_provider_runs_from_devtools_with_exact_callbacks(
    base: list[Resource],
) -> None:
    (container,) = containers(of_kind(base, "Deployment")["idp"])
    assert "devtools.idp.app:create_app" in container["command"]
    data = of_kind(base, "ConfigMap")["idp-config"]["data"]
    assert data["IDP_SIMULATE_LOGIN"] == "false"
    from devtools.idp.settings import IdpSettings

    settings = IdpSettings(allowed_callbacks=json.loads(data["IDP_ALLOWED_CALLBACKS"]))
    configs = of_kind(base, "ConfigMap")
    public = configs["gateway-config"]["data"]["GATEWAY_PUBLIC_URL"]
    assert f"{public}/v1/auth/esso/callback" in settings.allowed_callbacks
    portal = configs["portal-config"]["data"]["PORTAL_PUBLIC_URL"]
    assert f"{portal}/auth/esso/callback" in settings.allowed_callbacks


def test_egress_reaches_postgresql_and_the_gateway_reaches_redis(
    production: list[Resource],
) -> None:
    policies = of_kind(production, "NetworkPolicy")
    pg = policies["allow-postgresql"]["spec"]
    assert pg["egress"] == [{"ports": [{"protocol": "TCP", "port": 5432}]}]
    assert set(pg["podSelector"]["matchExpressions"][0]["values"]) == {
        "gateway",
        "scoring",
        "credit",
        "policy",
        "portal",
        "migrate",
    }
    gateway_ports = [
        p["port"] for rule in policies["gateway-egress"]["spec"]["egress"] for p in rule["ports"]
    ]
    assert 6379 in gateway_ports


def test_the_production_overlay_drops_the_idp_and_sets_production(
    base: list[Resource], production: list[Resource]
) -> None:
    assert "idp" in of_kind(base, "Deployment")
    assert not [r for r in production if "idp" in r["metadata"]["name"]]
    text = json.dumps(production)
    assert "idp:8009" not in text and "IDP_" not in text
    configs = of_kind(production, "ConfigMap")
    for name in SCALED:
        data = configs[f"{name}-config"]["data"]
        assert data[f"{name.upper()}_ENVIRONMENT"] == "production"
        assert data[f"{name.upper()}_LOG_JSON"] == "true"
    gateway = configs["gateway-config"]["data"]
    assert gateway["GATEWAY_PUBLIC_URL"].startswith("https://")
    assert gateway["GATEWAY_ESSO_QUERY_URL"].startswith("https://")
    (container,) = containers(of_kind(production, "Deployment")["gateway"])
    redis = next(e for e in container["env"] if e["name"] == "GATEWAY_RATE_LIMIT_STORAGE")
    assert redis["valueFrom"]["secretKeyRef"]["name"] == "innovation-points-redis"
    base_gw = containers(of_kind(base, "Deployment")["gateway"])[0]["resources"]["limits"]
    assert container["resources"]["limits"] != base_gw
    assert all(r["metadata"].get("namespace", NAMESPACE) == NAMESPACE for r in production)
    images = {c["image"] for _, d in deployments_of(production) for c in containers(d)}
    assert len(images) == 1 and images.pop().endswith(":0.1.0")
    ingresses = of_kind(production, "Ingress")
    hosts = {}
    for name in PUBLIC:
        (tls,) = ingresses[name]["spec"]["tls"]
        assert tls["hosts"] == [rule["host"] for rule in ingresses[name]["spec"]["rules"]]
        hosts[name] = tls["hosts"][0]
    portal = configs["portal-config"]["data"]
    assert gateway["GATEWAY_PUBLIC_URL"] == f"https://{hosts['gateway']}"
    assert portal["PORTAL_PUBLIC_URL"] == f"https://{hosts['portal']}"
    assert portal["PORTAL_ESSO_LOGIN_URL"].startswith("https://")


# --- compose and the image -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema)
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depends_on"]["scoring"]["condition"] = "service_up"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_compose_has_every_part_with_health_checks_and_ordering(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "scoring",
        "credit",
        "policy",
        "gateway",
        "portal",
        "idp",
    }
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"
            assert service["command"][-1].startswith("python -m scripts.migrate")
            continue
        test = " ".join(service["healthcheck"]["test"])
        if name in PORTS:
            assert f"127.0.0.1:{PORTS[name]}{component(name).ready_path}" in test, name
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )
            assert service["read_only"] is True
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["gateway"]["environment"]["GATEWAY_RATE_LIMIT_STORAGE"].startswith("redis://")
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == PUBLIC | {"idp"}
    # Metrics on their own ports, on the compose network only.
    for name, port in METRICS_PORTS.items():
        env = services[name]["environment"]
        assert env[f"{name.upper()}_METRICS_PORT"] == str(port), name
        assert all(str(port) not in str(p) for s in services.values() for p in s.get("ports", []))


def _interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` with only `given` set."""
    return re.sub(
        r"\$\{(\w+)(?::?[-?]([^}]*))?\}", lambda m: given.get(m[1], m[2] or ""), str(value)
    )


def test_compose_in_production_is_refused_not_half_development(compose: dict[str, Any]) -> None:
    """ENVIRONMENT=production with compose's development settings must not start a gateway
    that accepts the development provider's logins (issue 10, item 2)."""
    from gateway.settings import GatewaySettings

    given = {"ENVIRONMENT": "production", "POSTGRES_PASSWORD": "x"}
    gateway_env = {
        k.removeprefix("GATEWAY_"): _interpolate(v, given)
        for k, v in compose["services"]["gateway"]["environment"].items()
        if k.startswith("GATEWAY_")
    }
    with pytest.raises(ValueError, match=r"development identity provider|placeholder"):
        GatewaySettings(**{k.lower(): v for k, v in gateway_env.items()})
    from portal.settings import PortalSettings

    portal_env = {
        k.removeprefix("PORTAL_").lower(): _interpolate(v, given)
        for k, v in compose["services"]["portal"]["environment"].items()
        if k.startswith("PORTAL_")
    }
    assert portal_env["environment"] == "production"
    with pytest.raises(ValueError, match=r"session_keys|https"):
        PortalSettings(**portal_env)
    idp_env = compose["services"]["idp"]["environment"]
    assert _interpolate(idp_env["IDP_ENVIRONMENT"], given) == "production"
    assert idp_env["IDP_SIMULATE_LOGIN"] == "false"
    # Every development-only setting says so where it is set.
    text = (DEPLOY / "compose.yaml").read_text()
    assert text.count("DEVELOPMENT ONLY") >= 3


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    instructions = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    stages: list[list[dockerfile.Command]] = []
    for cmd in instructions:
        if cmd.cmd == "FROM":
            stages.append([])
        if stages:  # a global ARG may precede the first stage
            stages[-1].append(cmd)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    final = stages[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(c.cmd == "HEALTHCHECK" for c in final)
    final_runs = " ".join(" ".join(c.value) for c in final if c.cmd == "RUN")
    assert "pip install" not in final_runs, "the runtime stage installs nothing"
    build_runs = " ".join(" ".join(c.value) for c in stages[0] if c.cmd == "RUN")
    assert "[dev]" not in build_runs and "pip install" in build_runs
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "**", "the context starts empty and lists what the image needs"
    assert "!var" not in ignored and "!var/" not in ignored
    # The development tools are in the default image (compose runs the simulator) and can be
    # left out of a production one.
    assert "!devtools/" in ignored
    # Every component's package is in the image (devtools/ optionally).
    copied = {c.value[0].rstrip("/") for c in stages[0] if c.cmd == "COPY"}
    for comp in COMPONENTS:
        package = comp.app.split(".")[0]
        assert f"!{package}/" in ignored and package in copied, comp.name
    exposed = {int(p) for c in final if c.cmd == "EXPOSE" for p in c.value}
    ports = {c.port for c in COMPONENTS} | set(METRICS_PORTS.values())
    assert ports <= exposed
    args = {c.value[0].split("=")[0] for c in stages[0] if c.cmd == "ARG"}
    assert "INCLUDE_DEVTOOLS" in args
    assert "rm -rf devtools" in build_runs


PRODUCTION_PACKAGES = ("shared", "contracts", "services", "gateway")


def test_production_code_imports_nothing_from_devtools() -> None:
    """A production image may leave devtools/ out: nothing that runs there may need it."""
    offenders = []
    for package in PRODUCTION_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                offenders += [
                    f"{path.relative_to(ROOT)}: {n}"
                    for n in names
                    if n == "devtools" or n.startswith("devtools.")
                ]
    assert not offenders


def test_the_configuration_reference_is_current() -> None:
    """docs/configuration.md is generated from the settings classes: regenerate it with
    `make config-docs` after changing a setting."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.config_reference", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
