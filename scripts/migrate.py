"""`make migrate`: every service's schema to head (DATABASE_URL, or the embedded server)."""

from __future__ import annotations

import os
from pathlib import Path

from shared.components import COMPONENTS
from shared.migrations import upgrade
from shared.pg import resolve_database_url


def migrate_all(url: str) -> list[str]:
    done = []
    for comp in COMPONENTS:
        if not comp.available():
            continue
        directory = comp.migrations_dir()
        if directory is None or comp.schema is None:
            continue
        upgrade(directory, url, comp.schema)
        done.append(comp.name)
    return done


def main() -> None:
    url = resolve_database_url(os.environ.get("DATABASE_URL"), Path("var"))
    print("migrated:", ", ".join(migrate_all(url)))


if __name__ == "__main__":
    main()
