"""Tables of the credit service (schema `credit`).

Money is whole CNY in BIGINT; rates are percent per year. Lines are derived data (the
published evaluation x the published product versions), computed when read by the view
`credit_lines` (made by the migration), so nothing is rewritten when either changes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from shared.db import schema_metadata
from shared.feed import ConsumerCursorMixin


class Base(DeclarativeBase):
    metadata = schema_metadata("credit")


# Applications in these states block another application for the same product.
OPEN_STATUSES = ("submitted", "under_review", "approved", "disbursed")
# Literal SQL (not bound parameters) so ON CONFLICT can infer the partial unique index.
OPEN_PREDICATE = "status IN (" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"


class Bank(Base):
    """A lending bank in the financial supermarket (金融超市)."""

    __tablename__ = "banks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    hotline: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CreditProduct(Base):
    """A bank's credit product; its terms live in immutable `ProductVersion`s."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'withdrawn')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    # The version offered to enterprises; None until first published.
    published_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The person (the principal's `act`, else its sub) who withdrew it.
    withdrawn_by: Mapped[str | None] = mapped_column(Text)


class ProductVersion(Base):
    """The terms of one product version. A draft may be edited; once published, never."""

    __tablename__ = "product_versions"

    product_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    eligible_stages: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    min_tier: Mapped[int | None] = mapped_column(SmallInteger)
    min_percentile: Mapped[float | None] = mapped_column(Double)
    line_rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    max_amount: Mapped[int] = mapped_column(BigInteger)
    rate_min: Mapped[float] = mapped_column(Double)
    rate_max: Mapped[float] = mapped_column(Double)
    term_months: Mapped[int] = mapped_column(SmallInteger)
    guarantee: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The person who published this version (the principal's `act`, else its sub).
    published_by: Mapped[str | None] = mapped_column(Text)
    # The line rule's bands as the view `credit_lines` searches them, generated from
    # `line_rule` (see the migration that made lines a view); not loaded with the entity.
    line_mins: Mapped[list[float]] = deferred(
        mapped_column(ARRAY(Double), Computed("credit.line_band_mins(line_rule)"))
    )
    line_amounts: Mapped[list[int]] = deferred(
        mapped_column(ARRAY(BigInteger), Computed("credit.line_band_amounts(line_rule)"))
    )
    line_by_tier: Mapped[bool] = deferred(
        mapped_column(
            Boolean,
            Computed(
                "(COALESCE((line_rule ->> 'basis'::text), 'percentile'::text) = 'tier'::text)"
            ),
        )
    )


class Evaluation(Base):
    """A published scoring evaluation this service has imported."""

    __tablename__ = "evaluations"

    run_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    period: Mapped[int] = mapped_column(SmallInteger)
    model_version: Mapped[str] = mapped_column(Text)
    event_id: Mapped[int] = mapped_column(BigInteger)
    enterprise_count: Mapped[int] = mapped_column(Integer)
    scored_count: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class EnterpriseScore(Base):
    """What credit needs of one enterprise's published score: the evidence of its lines.

    Partitioned by run (LIST on `run_id`, made by the migration; a partition per run, see
    `shared.partitions`): the feed sync copies a run into a fresh table of its own and drops
    the previous run's, rather than deleting a million rows.
    """

    __tablename__ = "enterprise_scores"
    __table_args__ = ({"postgresql_partition_by": "LIST (run_id)"},)

    # No foreign key to `evaluations`: a million rows are copied per evaluation, and the sync
    # drops the previous run's rows itself.
    run_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(16))
    scored: Mapped[bool] = mapped_column(Boolean)
    exclusion: Mapped[str | None] = mapped_column(Text)
    total: Mapped[float | None] = mapped_column(Double)
    rank: Mapped[int | None] = mapped_column(Integer)
    cohort_size: Mapped[int | None] = mapped_column(Integer)
    percentile: Mapped[float | None] = mapped_column(Double)
    tier: Mapped[int | None] = mapped_column(SmallInteger)


# Views, read through the ORM but not tables of `Base.metadata` (the migrations make them).
_views = MetaData(schema="credit")

# A pre-approved line (授信额度): one enterprise of the current evaluation x one published
# product version it is eligible for, computed when read (the view's SQL states the rule of
# `lines.rules`). `band` indexes the rule's bands, highest minimum first; -1 for the base.
credit_lines = Table(
    "credit_lines",
    _views,
    Column("uscc", String(18), nullable=False),
    Column("product_id", UUID, nullable=False),
    Column("product_version", Integer, nullable=False),
    Column("run_id", UUID, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("band", SmallInteger, nullable=False),
    PrimaryKeyConstraint("uscc", "product_id"),
)


class CreditLine(Base):
    """A row of the view `credit_lines`: read only."""

    __table__ = credit_lines

    uscc: Mapped[str]
    product_id: Mapped[uuid.UUID]
    product_version: Mapped[int]
    run_id: Mapped[uuid.UUID]
    amount: Mapped[int]
    band: Mapped[int]


class LineGeneration(Base):
    """How many statements have changed the lines: one row, counted by a statement trigger
    on what they are computed from (`enterprise_scores`, `products`, `product_versions`:
    every INSERT, UPDATE, DELETE, COPY and TRUNCATE, whoever runs it) in the writer's
    transaction. A new run's scores, copied into their own partition before it is attached,
    are not counted: they are another run. What a reader derives from the lines alone (the coverage
    statistic) is keyed on this count and the run, read in the same statement, so a derived
    value remembered by one replica can never be served for lines another has changed.
    """

    __tablename__ = "line_generation"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    generation: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


# Why a consent is no longer in force; an expiry (`expires_at` passed) needs no row change.
CONSENT_END_REASONS = (
    "withdrawn",  # the enterprise withdrew this (explicit) consent
    "application_withdrawn",
    "application_rejected",
    "loan_closed",
    "expired",  # recorded when an expired explicit consent is replaced by a new grant
)


class Consent(Base):
    """An enterprise's consent that one bank may see its current score and amounts (授权).

    PIPL makes consent specific and revocable, so each consent has a basis and ends:
    - `application`: given by applying, scoped to that application (its bank, for deciding on
      it and managing the loan it leads to). Ends when the application is withdrawn or
      rejected or the loan is closed; once disbursed, at the latest when the loan's term
      ends (`expires_at`).
    - `explicit`: given on its own; lasts until the enterprise withdraws it, or until the
      expiry it chose.
    Ended consents stay as the record of what was shared, until when and why.
    """

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint("basis IN ('application', 'explicit')", name="basis"),
        CheckConstraint(
            "(basis = 'application') = (application_id IS NOT NULL)", name="application_scope"
        ),
        CheckConstraint(
            "end_reason IN (" + ", ".join(f"'{r}'" for r in CONSENT_END_REASONS) + ")",
            name="end_reason",
        ),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="ended"),
        Index("ix_consents_uscc_bank_id", "uscc", "bank_id"),
        # One explicit consent at a time per bank: granting again changes that one.
        Index(
            "uq_consents_explicit_per_bank",
            "uscc",
            "bank_id",
            unique=True,
            postgresql_where=text("basis = 'explicit' AND ended_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    uscc: Mapped[str] = mapped_column(String(18))
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id"))
    basis: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID, ForeignKey("applications.id"), unique=True
    )
    granted_by: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))


class LoanApplication(Base):
    """An enterprise's application for a product version, with the evidence it was made on."""

    __tablename__ = "applications"
    __table_args__ = (
        ForeignKeyConstraint(
            ["product_id", "product_version"],
            ["product_versions.product_id", "product_versions.version"],
        ),
        CheckConstraint(
            "status IN ('submitted', 'under_review', 'approved', 'rejected', 'withdrawn', "
            "'disbursed', 'closed')",
            name="status",
        ),
        Index("ix_applications_bank_status", "bank_id", "status", "created_at"),
        Index(
            "uq_applications_open_per_product",
            "uscc",
            "product_id",
            unique=True,
            postgresql_where=text(OPEN_PREDICATE),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    enterprise_name: Mapped[str] = mapped_column(Text)
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(UUID)
    product_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    requested_amount: Mapped[int] = mapped_column(BigInteger)
    requested_term_months: Mapped[int] = mapped_column(SmallInteger)
    line_amount: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID)
    period: Mapped[int] = mapped_column(SmallInteger)
    stage: Mapped[str] = mapped_column(String(16))
    percentile: Mapped[float | None] = mapped_column(Double)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    total: Mapped[float | None] = mapped_column(Double)
    approved_amount: Mapped[int | None] = mapped_column(BigInteger)
    approved_rate: Mapped[float | None] = mapped_column(Double)
    approved_term_months: Mapped[int | None] = mapped_column(SmallInteger)
    reason_codes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    disbursed_amount: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disbursed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApplicationStatusChange(Base):
    """One transition of an application: who, when, from, to, why."""

    __tablename__ = "application_status_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """A client's Idempotency-Key, claimed once per enterprise, with the first answer."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID, ForeignKey("applications.id", ondelete="CASCADE")
    )
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxMessage(Base):
    """A notification to a bank, written in the transaction of what it reports."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_outbox_bank_id_id", "bank_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id"))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the retries are exhausted; the message stays in the pull feed regardless.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One attempt to deliver an outbox message: the delivery log."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("outbox.id", ondelete="CASCADE"), index=True
    )
    bank_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsumerCursor(ConsumerCursorMixin, Base):
    """How far this service has read another service's event feed."""

    __tablename__ = "consumer_cursors"


# A loan's performance as its bank reports it (issue 13). Worst last: `OUTCOME_STATES.index`
# orders severity, and "bad" is defined on it (docs/governance.md).
OUTCOME_STATES = ("current", "repaid", "overdue_30", "overdue_60", "overdue_90_plus", "default")


class LoanOutcome(Base):
    """One report of a disbursed loan's state on a date: append-only, never updated.

    A loan is a disbursed application; only its bank reports on it. The natural key
    (loan, date, state) makes a repeated report the same report; a report contradicting an
    earlier one for the same key is refused, so the history never changes under a reader.
    """

    __tablename__ = "loan_outcomes"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in OUTCOME_STATES) + ")", name="state"
        ),
        CheckConstraint("outstanding >= 0", name="outstanding"),
        CheckConstraint("state <> 'repaid' OR outstanding = 0", name="repaid_nothing_left"),
        Index("uq_loan_outcomes_natural", "application_id", "as_of", "state", unique=True),
        Index(
            "uq_loan_outcomes_idempotency",
            "bank_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_loan_outcomes_bank_id", "bank_id", "id"),
        Index("ix_loan_outcomes_uscc", "uscc", "id"),
        Index("ix_loan_outcomes_period", "period", "application_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID, ForeignKey("applications.id"))
    # Copied from the application so the statistics read one table.
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id"))
    uscc: Mapped[str] = mapped_column(String(18))
    # The score period the loan was granted on (the application's evidence).
    period: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[date] = mapped_column(Date)
    outstanding: Mapped[int] = mapped_column(BigInteger)
    # Made up by the demo's back-book generator, never a bank's real report.
    synthetic: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reported_by: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
