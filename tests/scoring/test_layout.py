"""The scoring service ships no development code: nothing in it imports `devtools`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter, since the test session itself has loaded the demo generator.
PROBE = """
import importlib, pkgutil, sys
import services.scoring as pkg
for module in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if ".migrations" not in module.name:
        importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m == "devtools" or m.startswith("devtools.")))
print(sum(1 for m in sys.modules if m.startswith("services.scoring.")))
"""


def test_no_scoring_module_imports_devtools() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded, count = result.stdout.splitlines()
    assert loaded == "[]"
    assert int(count) > 20  # the walk really imported the service's modules
