"""Every service's Alembic history builds exactly the schema its models describe: an
autogenerate comparison against the migrated database finds nothing to do."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import asyncpg_url

MODELS = {
    "scoring": "services.scoring.models",
    "credit": "services.credit.models",
    "policy": "services.policy.models",
    "gateway": "gateway.models",
    "portal": "portal.models",
}


def _diff(connection: Connection, metadata: MetaData, schema: str) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _parent: type_ != "schema" or name == schema,
            "compare_type": True,
            "version_table_schema": schema,
        },
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("schema", sorted(MODELS))
async def test_migrations_match_models(schema: str, database_url: str) -> None:
    import importlib

    metadata: MetaData = importlib.import_module(MODELS[schema]).Base.metadata
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff, metadata, schema)
    finally:
        await engine.dispose()
    assert diff == [], f"{schema}: models and migrations disagree: {diff}"
