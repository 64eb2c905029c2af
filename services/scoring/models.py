"""Tables of the scoring service (schema `scoring`).

Indicator and profile values are columns of `facts` (one row per enterprise and period), so
an evaluation reads them with one binary COPY straight into numpy. A run's scores keep the
raw inputs they were computed from (`values`), so any score can be reproduced exactly even
after the period is re-imported.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
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

from contracts.catalogue import INDICATOR_CODES, PROFILE
from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("scoring")


class Enterprise(Base):
    """An enterprise, keyed by its unified social credit code (统一社会信用代码)."""

    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    founded_on: Mapped[date | None] = mapped_column(Date)
    industry: Mapped[str | None] = mapped_column(Text)
    legal_rep: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


def _fact_columns() -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for code in INDICATOR_CODES:
        cols[code] = mapped_column(Double, nullable=True)
    for attr in PROFILE:
        if attr.kind == "tags":
            cols[attr.code] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
        elif attr.kind == "bool":
            cols[attr.code] = mapped_column(Boolean, nullable=True)
        else:
            cols[attr.code] = mapped_column(Double, nullable=True)
    return cols


class Facts(Base):
    """The 24 indicator values and the profile attributes of one enterprise for one year.

    No foreign keys: checked row by row they took 8 of the 18 s of loading a million rows.
    Both writers (the import and the bulk loader) upsert the enterprise first and take its
    id from a join in the same transaction, so a fact never exists without its enterprise;
    enterprises and imports are never deleted.
    """

    __tablename__ = "facts"
    __table_args__ = (Index("ix_facts_period", "period"),)

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    period: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # The enterprise's surrogate key, copied here so an evaluation reads facts without a join.
    enterprise_id: Mapped[int] = mapped_column(BigInteger)
    import_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    locals().update(_fact_columns())


class Import(Base):
    """One upload by the government portal: who, when, what file, what happened."""

    __tablename__ = "imports"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    period: Mapped[int | None] = mapped_column(SmallInteger)
    filename: Mapped[str] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(8))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # succeeded | rejected
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_inserted: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScoringModel(Base):
    """A versioned scoring model; immutable once published."""

    __tablename__ = "scoring_models"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # draft | published
    description: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvaluationRun(Base):
    """Scoring of one period with one model version. One run per period is published."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (
        Index(
            "uq_evaluation_runs_published_period",
            "period",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    period: Mapped[int] = mapped_column(SmallInteger)
    model_version: Mapped[str] = mapped_column(ForeignKey("scoring_models.version"))
    # running | completed | failed | published | superseded
    status: Mapped[str] = mapped_column(String(16))
    input_fingerprint: Mapped[str | None] = mapped_column(String(64))
    enterprise_count: Mapped[int] = mapped_column(Integer, default=0)
    scored_count: Mapped[int] = mapped_column(Integer, default=0)
    excluded_count: Mapped[int] = mapped_column(Integer, default=0)
    merges: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # Tens of kilobytes per run and immutable: not loaded with the run on every read (the
    # score endpoints take it once per run from a cache), and never lazily in async code.
    cohort_stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, deferred=True, deferred_raiseload=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Score(Base):
    """One enterprise's result in one run. Written once, never updated.

    Partitioned by run: each run's rows are loaded into a fresh table (COPY FREEZE, indexes
    built once after the load rather than row by row) that is then attached, and an old run
    can be dropped whole.
    """

    __tablename__ = "scores"
    __table_args__ = (
        Index("ix_scores_run_stage_rank", "run_id", "stage", "rank"),
        {"postgresql_partition_by": "LIST (run_id)"},
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("evaluation_runs.id", ondelete="CASCADE"), primary_key=True
    )
    enterprise_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stage: Mapped[int] = mapped_column(SmallInteger)  # -1: no revenue, not staged
    cohort: Mapped[int] = mapped_column(SmallInteger)
    scored: Mapped[bool] = mapped_column(Boolean)
    exclusion: Mapped[str | None] = mapped_column(Text)
    total: Mapped[float | None] = mapped_column(Double)
    rank: Mapped[int | None] = mapped_column(Integer)
    cohort_size: Mapped[int | None] = mapped_column(Integer)
    percentile: Mapped[float | None] = mapped_column(Double)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    dimension_scores: Mapped[list[float]] = mapped_column(ARRAY(Double))
    dimension_percentiles: Mapped[list[float]] = mapped_column(ARRAY(Double))
    points: Mapped[list[float]] = mapped_column(ARRAY(Double))
    # The raw inputs of this score, NaN for missing: the run's immutable snapshot.
    values: Mapped[list[float]] = mapped_column(ARRAY(Double))
    revenue: Mapped[float | None] = mapped_column(Double)


class Event(Base):
    """The outbox feed other services read from their own cursor (`GET /v1/events`)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
