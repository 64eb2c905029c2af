"""The benchmarks' CPU accounting (`scripts.bench_gateway.tree_cpu`): a process's CPU with
that of everything it started, ended processes included (a PostgreSQL backend closed
during a run, a uvicorn worker)."""

from __future__ import annotations

import subprocess
import sys
import time

from scripts.bench_gateway import tree_cpu

# A parent that starts a child burning ~0.4 s of CPU, waits for it (reaping it), then idles.
PARENT = """
import subprocess, sys, time
subprocess.run([sys.executable, "-c", "import time\\nt=time.process_time()\\n"
                "while time.process_time() - t < 0.4: pass"], check=True)
print("reaped", flush=True)
time.sleep(30)
"""


def test_an_ended_child_is_counted() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "reaped"
        time.sleep(0.1)
        assert tree_cpu(parent.pid) >= 0.35
    finally:
        parent.kill()
        parent.wait()
    assert tree_cpu(parent.pid) != tree_cpu(parent.pid)  # gone: NaN, never a number
