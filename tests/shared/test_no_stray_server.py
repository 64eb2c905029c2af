"""A test session on the embedded PostgreSQL leaves no server running behind it (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.pg import embedded_running, stop_embedded


def test_a_session_that_started_the_embedded_server_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
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
