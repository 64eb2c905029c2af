"""A test session on the embedded PostgreSQL leaves no server running behind it (issue 14)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared.pg import embedded_running, stop_embedded


# `make test` runs xdist workers: there the controller starts the server, the workers share it.
@pytest.mark.parametrize(
    "workers", [[], ["-n", "2", "--dist", "loadfile"]], ids=["serial", "xdist"]
)
def test_a_session_that_started_the_embedded_server_stops_it(workers: list[str]) -> None:
    # Not under pytest's tmp_path: the inner session's own temp directory handling sets
    # /tmp/pytest-of-<user> back to 0700, and the server (pgserver's own system user when run
    # as root) then loses its data directory in the middle of the run.
    scratch = Path("var") / f"no-stray-{uuid.uuid4().hex[:10]}"
    data = scratch / "pgdata"
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "TEST_DATABASE_URL" and not k.startswith("PYTEST_XDIST")
    }
    env["IP_TEST_PGDATA"] = str(data)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:randomly",
                *workers,
                "tests/scoring/test_foundation.py",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert (data / "PG_VERSION").exists(), "the session did not use the embedded server"
        assert not embedded_running(data), "the embedded server outlived the test session"
    finally:
        stop_embedded(data)
        shutil.rmtree(scratch, ignore_errors=True)
