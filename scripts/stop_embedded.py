"""`make clean` (first step): stop the embedded PostgreSQL under var/pgdata, if it runs."""

from __future__ import annotations

from pathlib import Path

from shared.pg import stop_embedded


def main() -> None:
    stopped = stop_embedded(Path("var/pgdata"))
    print("embedded PostgreSQL stopped" if stopped else "no embedded PostgreSQL running")


if __name__ == "__main__":
    main()
