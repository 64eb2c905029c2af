"""Reading the seed definitions from their YAML files, refusing anything wrong with a message
that names the file, the entry and the criterion.

YAML rather than JSON so the files can carry comments for the staff who review them. PyYAML's
safe loader builds plain data only (no Python objects); on top of it, a key written twice in
one mapping is an error, where PyYAML would silently keep the last. Every entry then goes
through the pydantic models (`PoolDefinition`, `PolicyDefinition`, hence `Rule`) and its rule
through `validate_rule`, the same gate a policy written through the API passes.

A policy may take a pool's criteria instead of restating them (one place to change when the
pool's rules change), as an item of an `all` / `any` group:

    - pool: eaglet                       the pool's whole rule tree, as one node, ids unchanged
    - pool: hnte                         the pool's criteria one by one, in place, their ids
      criteria_as: hnte_cultivation.hnte moved from `hnte.` to `hnte_cultivation.hnte.`

Errors about such a policy give paths in the expanded tree; the criterion id still names it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml
from pydantic import ValidationError

from services.policy.criteria import validate_rule
from services.policy.definitions.schemas import PolicyDefinition, PoolDefinition

DEFINITIONS_DIR = Path(__file__).parent
POOLS_FILE = "pools.yaml"
POLICIES_FILE = "policies.yaml"

# Names that pydantic puts in an error's location for the branch of a rule node it tried.
_NODE_TAGS = frozenset({"criterion", "group", "points"})
_MAX_ERRORS = 5

_D = TypeVar("_D", PoolDefinition, PolicyDefinition)


class DefinitionError(ValueError):
    """A definitions file cannot be read, or states a pool or policy that is not valid."""


class Definitions(NamedTuple):
    pools: tuple[PoolDefinition, ...]
    policies: tuple[PolicyDefinition, ...]


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"the key {key!r} is given twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_definitions(directory: Path = DEFINITIONS_DIR) -> Definitions:
    """The pools, then the policies (which may refer to the pools), validated."""
    pools = _load_entries(directory / POOLS_FILE, "pools", "pool", PoolDefinition, {})
    by_code = {p.code: p for p in pools}
    policies = _load_entries(
        directory / POLICIES_FILE, "policies", "policy", PolicyDefinition, by_code
    )
    for policy in policies:
        unknown = sorted(set(policy.pools) - set(by_code))
        if unknown:
            raise DefinitionError(
                f"{POLICIES_FILE}: policy {policy.code!r}: pools {unknown} are not in {POOLS_FILE}"
            )
    return Definitions(pools, policies)


def _read(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)
    except OSError as e:
        raise DefinitionError(f"{path.name}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise DefinitionError(f"{path.name}: not valid YAML: {e}") from None


def _load_entries(
    path: Path, key: str, kind: str, model: type[_D], pools: Mapping[str, PoolDefinition]
) -> tuple[_D, ...]:
    data = _read(path)
    if not isinstance(data, dict) or set(data) != {key} or not isinstance(data[key], list):
        raise DefinitionError(f"{path.name}: expected one key, {key!r}, holding a list")
    out: list[_D] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data[key], start=1):
        what = _entry_name(path.name, kind, number, raw)
        if not isinstance(raw, dict):
            raise DefinitionError(f"{what}: expected a mapping of fields")
        if pools and isinstance(raw.get("rule"), dict):
            raw = {**raw, "rule": _expand_rule(raw["rule"], pools, what)}
        entry = _validate(model, raw, what)
        problems = validate_rule(entry.rule)
        if problems:
            raise DefinitionError(
                f"{what}: the rule is not valid: "
                + "; ".join(
                    f"rule.{p.path}"
                    + (f" (criterion {p.criterion_id!r})" if p.criterion_id else "")
                    + f": {p.message}"
                    for p in problems[:_MAX_ERRORS]
                )
            )
        if entry.code in seen:
            raise DefinitionError(f"{what}: code {entry.code!r} is also entry {seen[entry.code]}")
        seen[entry.code] = number
        out.append(entry)
    return tuple(out)


def _entry_name(file: str, kind: str, number: int, raw: object) -> str:
    code = raw.get("code") if isinstance(raw, dict) else None
    return f"{file}: {kind} {code!r} (entry {number})" if code else f"{file}: {kind} {number}"


def _validate(model: type[_D], raw: dict[str, Any], what: str) -> _D:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise DefinitionError(f"{what}: {_describe(e, raw)}") from None


def _describe(e: ValidationError, raw: dict[str, Any]) -> str:
    """Each error as the path in the file, the id of the criterion or group it is in, and
    pydantic's message."""
    out = []
    for err in e.errors()[:_MAX_ERRORS]:
        path, node_id = _locate(raw, err["loc"])
        where = f"{path} (in {node_id!r})" if node_id else path
        out.append(f"{where}: {err['msg']}")
    return "; ".join(out)


def _locate(raw: Any, loc: Sequence[int | str]) -> tuple[str, str | None]:
    node, path, node_id = raw, "", None
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node, path = node[part], f"{path}[{part}]"
        elif isinstance(node, dict) and part in node:
            node, path = node[part], f"{path}.{part}"
        elif part in _NODE_TAGS and i < len(loc) - 1:
            continue
        else:
            path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
            continue
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            node_id = node["id"]
    return path.lstrip("."), node_id


def _expand_rule(
    rule: dict[str, Any], pools: Mapping[str, PoolDefinition], what: str
) -> dict[str, Any]:
    if "root" not in rule:
        return rule
    return {**rule, "root": _expand(rule["root"], pools, f"{what}: rule.root")}


def _expand(node: Any, pools: Mapping[str, PoolDefinition], where: str) -> Any:
    """The node with every pool reference among its groups' items replaced."""
    if not isinstance(node, dict) or not isinstance(node.get("items"), list):
        return node
    if node.get("kind") not in ("all", "any"):
        return node
    items: list[Any] = []
    for i, item in enumerate(node["items"]):
        at = f"{where}.items[{i}]"
        if isinstance(item, dict) and "pool" in item:
            items.extend(_pool_reference(item, pools, at))
        else:
            items.append(_expand(item, pools, at))
    return {**node, "items": items}


def _pool_reference(
    ref: dict[str, Any], pools: Mapping[str, PoolDefinition], where: str
) -> list[Any]:
    extra = sorted(set(ref) - {"pool", "criteria_as"})
    if extra:
        raise DefinitionError(
            f"{where}: a pool reference takes `pool` and `criteria_as`, not {extra}"
        )
    pool = pools.get(ref["pool"]) if isinstance(ref["pool"], str) else None
    if pool is None:
        raise DefinitionError(f"{where}: no pool {ref['pool']!r} in {POOLS_FILE}")
    root = pool.rule.root
    tree = root.model_dump(mode="python")
    prefix = ref.get("criteria_as")
    if prefix is None:
        return [tree]
    if not isinstance(prefix, str) or not prefix:
        raise DefinitionError(f"{where}: criteria_as must be an id prefix")
    if tree["kind"] not in ("all", "any"):
        raise DefinitionError(f"{where}: pool {pool.code!r} has no group of criteria to take")
    return [_reroot(item, f"{root.id}.", f"{prefix}.", where) for item in tree["items"]]


def _reroot(node: Any, old: str, new: str, where: str) -> Any:
    """A copy of the subtree with every id moved from under `old` to under `new`."""
    if isinstance(node, list):
        return [_reroot(x, old, new, where) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _reroot(v, old, new, where) for k, v in node.items()}
    node_id = node.get("id")
    if isinstance(node_id, str):
        if not node_id.startswith(old):
            raise DefinitionError(f"{where}: id {node_id!r} is not under {old!r}, cannot move it")
        out["id"] = new + node_id.removeprefix(old)
    return out
