"""Tables of the policy service (schema `policy`).

The service keeps its own copy of what it matches on: the facts of every enterprise of the
current published evaluation (`enterprise_facts`, replaced whole when a newer run is
published), so a policy published at any time is matched without calling scoring again.

`matches` holds one row per enterprise and rule (a pool, or the published version of a
policy) with its status and, in `detail`, every leaf criterion's result and gap keyed by the
criterion id. Statuses are stored as small integers, indices into `criteria.STATUSES`
(0 eligible, 1 near, 2 ineligible, 3 unknown), because the table is rewritten in bulk.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata
from shared.feed import ConsumerCursorMixin


class Base(DeclarativeBase):
    metadata = schema_metadata("policy")


class ConsumerCursor(ConsumerCursorMixin, Base):
    """How far this service has read another service's event feed."""

    __tablename__ = "consumer_cursors"


class Evaluation(Base):
    """The published scoring run whose enterprises are matched (only the current one is kept)."""

    __tablename__ = "evaluations"

    run_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    period: Mapped[int] = mapped_column(SmallInteger)
    model_version: Mapped[str] = mapped_column(Text)
    event_id: Mapped[int] = mapped_column(BigInteger)
    enterprise_count: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class EnterpriseFacts(Base):
    """One enterprise's facts in the current evaluation: indicators, profile, score, stage."""

    __tablename__ = "enterprise_facts"
    __table_args__ = (Index("ix_enterprise_facts_stage", "stage"),)

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID)
    name: Mapped[str] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Double)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)


class CultivationPool(Base):
    """A cultivation pool (培育库); seeded from `definitions.POOLS` at startup."""

    __tablename__ = "pools"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    target_stage: Mapped[str] = mapped_column(String(16))
    clause: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[str]] = mapped_column(JSONB)
    approximations: Mapped[list[str]] = mapped_column(JSONB)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    position: Mapped[int] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Policy(Base):
    """A policy (政策); its content lives in versions. `status` is the policy's as a whole:
    draft (never published), published (a version is live) or archived."""

    __tablename__ = "policies"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    latest_version: Mapped[int] = mapped_column(Integer)
    published_version: Mapped[int | None] = mapped_column(Integer)
    seeded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PolicyVersion(Base):
    """One version of a policy. Drafts are edited in place; a published version is never
    changed again (editing the policy starts the next draft)."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        Index(
            "uq_policy_versions_one_published",
            "policy_id",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
        Index(
            "uq_policy_versions_one_draft",
            "policy_id",
            unique=True,
            postgresql_where=text("status = 'draft'"),
        ),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # draft | published | superseded | archived
    status: Mapped[str] = mapped_column(String(16))
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    department_zh: Mapped[str] = mapped_column(Text)
    summary_zh: Mapped[str] = mapped_column(Text)
    benefits: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    pools: Mapped[list[str]] = mapped_column(JSONB)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    approximations: Mapped[list[str]] = mapped_column(JSONB)
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    # validate_rule's findings when the draft was saved (a draft may be saved unfinished).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Match(Base):
    """An enterprise against one rule: `pool:<code>` or `policy:<code>`.

    Keyed rule first: a rule's rows are written in one ordered COPY (append-only into the
    index) and read together (pool members); one enterprise's rows are found by probing the
    few active rule keys. No second index: each one costs a large share of a recompute.
    """

    __tablename__ = "matches"

    rule_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    status: Mapped[int] = mapped_column(SmallInteger)
    # [[result (1 pass, 0 fail, -1 unknown), gap or null], ...] in the order of the rule's
    # leaves (`matching.service.leaf_ids`): positional, because key names would make the
    # rows, and the recompute, a third larger.
    detail: Mapped[list[list[float | None]]] = mapped_column(JSONB)


class Push(Base):
    """A match pushed to an enterprise (一键配): newly eligible, or newly near."""

    __tablename__ = "pushes"
    __table_args__ = (
        Index("ix_pushes_uscc_id", "uscc", "id"),
        Index("ix_pushes_uscc_rule_key", "uscc", "rule_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18))
    rule_key: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(SmallInteger)
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
