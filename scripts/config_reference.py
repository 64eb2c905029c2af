"""`make config-docs`: docs/configuration.md from the components' settings classes.

Every setting of every component: its environment variable, type, default, whether it holds
a secret, and the comment written above the field in the settings class (the source is the
only documentation the fields have, so it is read from there). `--check` fails when the
file is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

OUTPUT = Path("docs/configuration.md")

# (component, settings class, what it is); the order of the document.
COMPONENTS = (
    ("gateway", "gateway.settings:GatewaySettings", "the public entry"),
    ("scoring", "services.scoring.settings:ScoringSettings", "the scoring service"),
    ("credit", "services.credit.settings:CreditSettings", "the credit service"),
    ("policy", "services.policy.settings:PolicySettings", "the policy service"),
    ("portal", "portal.settings:PortalSettings", "the web portal"),
    (
        "idp",
        "devtools.idp.settings:IdpSettings",
        "the development identity provider; never in production",
    ),
)
# Fields that name a file holding secret material rather than holding it themselves.
SECRET_FILES = {"key_file"}


@dataclass(frozen=True)
class Setting:
    env: str
    type: str
    default: str
    secret: str
    note: str


def load(ref: str) -> type[BaseSettings]:
    module, _, name = ref.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, BaseSettings)
    return cls


def field_comments(cls: type) -> dict[str, str]:
    """The comment lines right above each annotated field, through the base classes."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass in (BaseSettings, BaseModel, object) or not issubclass(klass, BaseModel):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        class_def = ast.parse(source).body[0]
        assert isinstance(class_def, ast.ClassDef)
        for node in class_def.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment: list[str] = []
                index = node.lineno - 2
                while index >= 0 and lines[index].strip().startswith("#"):
                    comment.insert(0, lines[index].strip().lstrip("#").strip())
                    index -= 1
                if comment:
                    notes[node.target.id] = " ".join(comment)
    return notes


def holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(holds_secret(f.annotation) for f in annotation.model_fields.values())
    return any(holds_secret(arg) for arg in typing.get_args(annotation))


def type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(map(type_name, args))}]"
    return getattr(annotation, "__name__", str(annotation))


def default_text(name: str, info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if isinstance(value, SecretStr):
        return "(placeholder; refused outside development)"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    notes = field_comments(cls)
    out = []
    for name, info in cls.model_fields.items():
        if holds_secret(info.annotation):
            secret = "**secret**"
        elif name in SECRET_FILES:
            secret = "**secret file**"
        else:
            secret = ""
        out.append(
            Setting(
                env=(prefix + name).upper(),
                type=type_name(info.annotation),
                default=default_text(name, info),
                secret=secret,
                note=notes.get(name, ""),
            )
        )
    return out


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    parts = [
        "# Configuration reference",
        "",
        "<!-- Generated by `make config-docs` (scripts/config_reference.py) from the settings",
        "     classes: edit the classes, not this file. -->",
        "",
        "Every component reads environment variables with its own prefix; unknown variables are",
        "ignored. Outside `ENVIRONMENT=development` a secret still holding a placeholder refuses",
        "to start, and `production` requires `DATABASE_URL` (the embedded PostgreSQL is for",
        "development). Structured values (lists, maps) are JSON. **secret** settings come from",
        "Secrets on Kubernetes (docs/deploy.md), never from a ConfigMap or the image.",
        "",
        "Tracing is configured by the standard OpenTelemetry variables, the same for every",
        "component: it is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or",
        "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_EXPORTER_OTLP_PROTOCOL`",
        "(`http/protobuf` by default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`,",
        "`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SDK_DISABLED` apply.",
        "",
        "Prometheus metrics are served only on `<PREFIX>_METRICS_PORT` (by convention the",
        "component's port + 100: 8100 for the gateway, 8101-8103 for the services), never on",
        "the public port; expose that port to the monitoring network alone.",
        "",
        "Which peers may set the client address through `X-Forwarded-For` is uvicorn's own",
        "setting, read by the gateway's process: `FORWARDED_ALLOW_IPS` (or",
        "`--forwarded-allow-ips`), a comma-separated list of addresses and networks. Set it to",
        "the ingress controller's address range, never `*`: uvicorn then takes the rightmost",
        "address not in that range, the one the ingress appended, and the per-address limits of",
        "the login and token endpoints count the real caller. Unset, uvicorn trusts loopback",
        "only; `make run` trusts no one (`--no-proxy-headers`).",
        "",
    ]
    for component, ref, what in COMPONENTS:
        cls = load(ref)
        parts += [
            f"## {component} ({what})",
            "",
            f"`{ref.replace(':', '.')}`",
            "",
            "| variable | type | default | secret | notes |",
            "|---|---|---|---|---|",
        ]
        for s in settings_of(cls):
            row = [f"`{s.env}`", cell(s.type), f"`{cell(s.default)}`", s.secret, cell(s.note)]
            parts.append("| " + " | ".join(row) + " |")
        parts.append("")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.exit(f"{args.output} is out of date: run `make config-docs`")
        return
    args.output.write_text(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
