"""The credit service ships without development tools: nothing under services/credit imports
devtools (the bank simulator lives there, for tests and `make run` only)."""

from __future__ import annotations

import ast
from pathlib import Path

import services.credit

CREDIT = Path(services.credit.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_credit_imports_nothing_from_devtools() -> None:
    sources = sorted(CREDIT.rglob("*.py"))
    assert len(sources) > 20, "the credit package was not found where expected"
    offenders: dict[str, list[str]] = {}
    for path in sources:
        dev = sorted(m for m in _imported_modules(path) if m.split(".")[0] == "devtools")
        if dev:
            offenders[str(path.relative_to(CREDIT))] = dev
    assert offenders == {}
    assert not (CREDIT / "bank_simulator.py").exists()
