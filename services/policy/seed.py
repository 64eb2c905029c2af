"""The seeded pools and policies, loaded at startup. Idempotent.

Pools are data (`definitions/pools.yaml`): their rows follow the file on every start. Seeded
policies (`definitions/policies.yaml`) are only inserted when missing: once loaded they belong
to the government, who may edit or archive them, and a restart must not undo that.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.definitions import POLICIES, POOLS, PolicyDefinition
from services.policy.matching.service import rule_key
from services.policy.models import CultivationPool, Policy, PolicyVersion

# Seeded policies get the same id in every deployment, so links to them are stable.
SEED_NAMESPACE = uuid.UUID("5f3c2a9e-5d0b-4c1e-9a57-3b7e2c1d4f60")


def seed_policy_id(code: str) -> uuid.UUID:
    return uuid.uuid5(SEED_NAMESPACE, code)


def _pool_row(position: int, code: str) -> dict[str, Any]:
    pool = next(p for p in POOLS if p.code == code)
    return {
        "code": pool.code,
        "name_zh": pool.name_zh,
        "name_en": pool.name_en,
        "target_stage": pool.target_stage.value,
        "clause": pool.clause,
        "sources": list(pool.sources),
        "approximations": list(pool.approximations),
        "rule": pool.rule.model_dump(mode="json", exclude_none=True),
        "position": position,
    }


def _version(policy_id: uuid.UUID, seed: PolicyDefinition) -> PolicyVersion:
    return PolicyVersion(
        policy_id=policy_id,
        version=1,
        status="published",
        title_zh=seed.title_zh,
        title_en=seed.title_en,
        department_zh=seed.department_zh,
        summary_zh=seed.summary_zh,
        benefits=[b.model_dump(mode="json") for b in seed.benefits],
        valid_from=seed.valid_from,
        valid_to=seed.valid_to,
        pools=list(seed.pools),
        rule=seed.rule.model_dump(mode="json", exclude_none=True),
        approximations=list(seed.approximations),
        illustrative=seed.illustrative,
        problems=[],
        created_by="seed",
        published_at=datetime.now(UTC),
    )


async def seed(session: AsyncSession) -> set[str]:
    """Load pools and seed policies; returns the rule keys whose rules changed."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('policy:seed'))"))
    changed: set[str] = set()
    current = {p.code: p for p in await session.scalars(select(CultivationPool))}
    for position, pool in enumerate(POOLS):
        row = _pool_row(position, pool.code)
        existing = current.get(pool.code)
        if existing is not None and all(getattr(existing, k) == v for k, v in row.items()):
            continue
        stmt = insert(CultivationPool).values(**row)
        update = {k: stmt.excluded[k] for k in row if k != "code"}
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["code"], set_={**update, "updated_at": text("now()")}
            )
        )
        if existing is None or existing.rule != row["rule"]:
            changed.add(rule_key("pool", pool.code))
    known = set(await session.scalars(select(Policy.code)))
    for seed_policy in POLICIES:
        if seed_policy.code in known:
            continue
        policy_id = seed_policy_id(seed_policy.code)
        session.add(
            Policy(
                id=policy_id,
                code=seed_policy.code,
                status="published",
                latest_version=1,
                published_version=1,
                seeded=True,
                created_by="seed",
            )
        )
        await session.flush()
        session.add(_version(policy_id, seed_policy))
        changed.add(rule_key("policy", seed_policy.code))
    await session.flush()
    return changed
