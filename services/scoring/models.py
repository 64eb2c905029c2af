"""Tables of the scoring service (schema `scoring`).

Indicator and profile values are columns of `facts` (one row per enterprise and period), so
an evaluation reads them with one binary COPY straight into numpy. A run's scores keep the
raw inputs they were computed from (`values`), so any score can be reproduced exactly even
after the period is re-imported.

Provenance (数据来源): every value's source is one entry of the row's `sources` array, aligned
with `FACT_VALUE_COLUMNS`, pointing at a `sources` row (an import, a correction from an
objection, or a named source system, each with a precedence and the date the values refer
to). One array per row rather than a row per value keeps the COPY paths vectorised; values
that change are appended to `fact_changes`.
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
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.catalogue import INDICATOR_CODES, PROFILE, PROFILE_CODES
from shared.db import schema_metadata

# The value columns of `facts`, in the order of its `sources` array.
FACT_VALUE_COLUMNS: tuple[str, ...] = (*INDICATOR_CODES, *PROFILE_CODES)


def facts_partition(period: int) -> str:
    """The name of `period`'s partition of `facts` (made by its first writer, see
    `imports.repository.fresh_partition`; the migration that partitioned `facts` names the
    partitions it makes the same way)."""
    return f"facts_{period}" if period >= 0 else f"facts_m{-period}"


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
    # 区县 (or street, 街道): free text, for statistics and fairness by district.
    district: Mapped[str | None] = mapped_column(Text)
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
    # One partition per period, made by the period's first writer (`imports.repository`): a
    # first load fills a fresh table whose index is built once, as scores are written. A
    # query of one period reads only its partition: no index on the period.
    __table_args__ = ({"postgresql_partition_by": "LIST (period)"},)

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    period: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # The enterprise's surrogate key, copied here so an evaluation reads facts without a join.
    enterprise_id: Mapped[int] = mapped_column(BigInteger)
    import_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Per value column (FACT_VALUE_COLUMNS order): the `sources.id` that set it; NULL for a
    # column never written, or written before provenance was recorded.
    sources: Mapped[list[int | None] | None] = mapped_column(ARRAY(Integer))

    locals().update(_fact_columns())


class Source(Base):
    """Where fact values came from: an import, a correction, or a named source system.

    `precedence` decides between writers of the same value: a writer never overwrites a value
    whose source has a higher precedence (an accepted objection's correction outranks a bulk
    re-import of the period). Scheduled pulls from departments' systems (tax bureau, market
    regulation, IP office, social security, S&T bureau) are `system` sources, each with its
    own precedence; nothing here has to change for them.
    """

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # import | correction | system
    system: Mapped[str | None] = mapped_column(Text)
    precedence: Mapped[int] = mapped_column(SmallInteger)
    period: Mapped[int | None] = mapped_column(SmallInteger)
    import_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("imports.id"))
    objection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("objections.id"))
    file_name: Mapped[str | None] = mapped_column(Text)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The date the values refer to (the end of the period, unless the source says otherwise).
    as_of: Mapped[date | None] = mapped_column(Date)


class FactChange(Base):
    """One changed value: append-only, written in the transaction that changed it."""

    __tablename__ = "fact_changes"
    __table_args__ = (Index("ix_fact_changes_value", "uscc", "period", "field", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18))
    period: Mapped[int] = mapped_column(SmallInteger)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[Any] = mapped_column(JSONB, nullable=True)  # SQL NULL: there was no value
    new_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    old_source_id: Mapped[int | None] = mapped_column(Integer)
    source_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
    # Values left as they were because a source of higher precedence set them.
    values_kept: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    as_of: Mapped[date | None] = mapped_column(Date)
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
    published_by: Mapped[str | None] = mapped_column(Text)
    # The challenger report (champion vs. this version in shadow) it was published on.
    challenger_report_id: Mapped[uuid.UUID | None] = mapped_column(UUID)


class EvaluationRun(Base):
    """Scoring of one period with one model version. One run per period is published, and at
    most one is in public notice (公示) at a time."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (
        Index(
            "uq_evaluation_runs_published_period",
            "period",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
        Index(
            "uq_evaluation_runs_notice_period",
            "period",
            unique=True,
            postgresql_where=text("status = 'in_notice'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    period: Mapped[int] = mapped_column(SmallInteger)
    model_version: Mapped[str] = mapped_column(ForeignKey("scoring_models.version"))
    # running | completed | failed | in_notice | published | superseded
    status: Mapped[str] = mapped_column(String(16))
    # The noticed run whose accepted objections this run takes in (a correcting run).
    corrects_run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("evaluation_runs.id"))
    notice_opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notice_opened_by: Mapped[str | None] = mapped_column(Text)
    notice_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str | None] = mapped_column(Text)
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
    # A challenger's shadow run: evaluated on the period's facts, never noticed or published.
    shadow: Mapped[bool] = mapped_column(Boolean, server_default="false", default=False)


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
    # The dimension percentiles, the points and the source of each value when the run read
    # it (0: none recorded), packed (`services.scoring.scores.packed`): nothing reads them
    # in SQL, and as arrays their 52 items were most of the cost of writing a score.
    packed: Mapped[bytes] = mapped_column(LargeBinary)
    # The raw inputs of this score, NaN for missing: the run's immutable snapshot.
    values: Mapped[list[float]] = mapped_column(ARRAY(Double))
    revenue: Mapped[float | None] = mapped_column(Double)
    # The source of the revenue when the run read it (0: none recorded).
    revenue_source: Mapped[int | None] = mapped_column(Integer)
    # Statuses, target bands and reasons order, computed in the evaluation's batch
    # (`engine.explain_codes`); NULL for runs evaluated before it was stored.
    explain: Mapped[bytes | None] = mapped_column(LargeBinary)


class Event(Base):
    """The outbox feed other services read from their own cursor (`GET /v1/events`)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Objection(Base):
    """An enterprise's objection (异议) to one value of a run in public notice."""

    __tablename__ = "objections"
    __table_args__ = (
        Index("ix_objections_run_status", "run_id", "status"),
        Index("ix_objections_uscc", "uscc", "created_at"),
        Index(
            "uq_objections_open_value",
            "run_id",
            "uscc",
            "field",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evaluation_runs.id"))
    period: Mapped[int] = mapped_column(SmallInteger)
    uscc: Mapped[str] = mapped_column(String(18))
    field: Mapped[str] = mapped_column(String(64))  # an indicator, or operating_revenue
    run_value: Mapped[float | None] = mapped_column(Double)  # what the run computed from
    run_source_id: Mapped[int | None] = mapped_column(Integer)
    claimed_value: Mapped[float] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # open | accepted | rejected
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)
    corrected_value: Mapped[float | None] = mapped_column(Double)
    correction_source_id: Mapped[int | None] = mapped_column(Integer)


class ObjectionEvidence(Base):
    """A file supporting an objection, kept in the database with its sha256.

    In PostgreSQL rather than on disk: the services are stateless replicas with no shared
    volume, the file commits or rolls back with the objection, and backups need no second
    store. Files are small (a per-file and a per-objection limit apply).
    """

    __tablename__ = "objection_evidence"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    objection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("objections.id", ondelete="CASCADE"), index=True
    )
    file_name: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Loaded only by the download, never with a listing.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEvent(Base):
    """Who did what to which run, objection or value, and when: append-only."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class ValidationRecord(Base):
    """A model validation computed once per (run, reference run, outcomes snapshot, config).

    Stored, not recomputed per request: the inputs are immutable (a run's scores never change;
    the outcomes are addressed by the sha256 of what credit returned), so the same key always
    gives the same figures, and the portal reads them in one row.
    """

    __tablename__ = "validation_reports"
    __table_args__ = (
        Index(
            "uq_validation_reports_key",
            "run_id",
            "reference_run_id",
            "outcomes_snapshot",
            "config_sha256",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_validation_reports_model_period", "model_version", "period"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    model_version: Mapped[str] = mapped_column(String(32))
    period: Mapped[int] = mapped_column(SmallInteger)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evaluation_runs.id", ondelete="CASCADE"))
    reference_run_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    outcomes_snapshot: Mapped[str] = mapped_column(String(64))
    config_sha256: Mapped[str] = mapped_column(String(64))
    synthetic: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, deferred=True, deferred_raiseload=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChallengerReport(Base):
    """A challenger model version in shadow against the champion, on one period's facts."""

    __tablename__ = "challenger_reports"
    __table_args__ = (Index("ix_challenger_reports_version", "challenger_version", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    challenger_version: Mapped[str] = mapped_column(ForeignKey("scoring_models.version"))
    champion_version: Mapped[str] = mapped_column(String(32))
    period: Mapped[int] = mapped_column(SmallInteger)
    shadow_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evaluation_runs.id"))
    champion_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evaluation_runs.id"))
    report: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
