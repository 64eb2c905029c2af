"""Tables of the policy service (schema `policy`).

The service keeps its own copy of what it matches on: the facts of every enterprise of the
current published evaluation (`enterprise_facts`, a partition per run, replaced whole when a
newer run is published), so a policy published at any time is matched without calling
scoring again. The same facts are kept as columns too (`population_columns`), which is what
bulk matching reads.

`rule_matches` holds, per rule (a pool, or the published version of a policy), what clients
read of every enterprise: its status and the ids of the criteria it fails, as vectors in the
population's order (`enterprise_facts.position`), with the rule as matched. The
criterion-by-criterion explanation (actual values, thresholds, gaps) is not stored: it is
computed on demand from the stored facts and that rule, which gives exactly what bulk matching
saw (the engine's two paths agree, and its tests hold them to it).

Why vectors and not a row per enterprise and rule: at a million enterprises and 20 rules, 20
million rows cost over a minute to write (measured, BENCHMARKS.md) where 20 vectors of a
megabyte cost well under a second; an enterprise's entry is read by slicing (the columns are
stored uncompressed, so PostgreSQL fetches only the chunk that holds it). The view
`policy.matches` (created by the migration) shows them as one row per enterprise and rule,
`(rule_key, uscc, status, failing)`, for ad-hoc SQL.
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
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
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
    """One enterprise's facts in the current evaluation: indicators, profile, score, stage.

    Partitioned by run (LIST on `run_id`, made by the migration; a partition per run, see
    `shared.partitions`): the feed sync copies a run into a fresh table of its own and drops
    the previous run's, rather than deleting a million rows. One run is kept at a time, so a
    code names one row.
    """

    __tablename__ = "enterprise_facts"
    __table_args__ = (
        Index("ix_enterprise_facts_stage", "stage"),
        {"postgresql_partition_by": "LIST (run_id)"},
    )

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    # 0-based index in USCC order within the run: the enterprise's entry in every vector of
    # `population_columns` and `rule_matches`.
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Double)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    # The facts are read from the population's columns at `position`; this document is only
    # that of a population stored before the columns existed (NULL since).
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


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
    # The person who archived it (the principal's actor), for the audit trail.
    archived_by: Mapped[str | None] = mapped_column(Text)


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
    published_by: Mapped[str | None] = mapped_column(Text)


class PopulationColumn(Base):
    """One fact of every enterprise of a run, as a little-endian numpy vector in position
    order: what bulk matching reads, so a recompute decodes no JSON.

    Numbers, yes/no and the stage are float64 (NaN missing; the stage as its index in
    `vocabulary`), tags an int64 bit mask over `vocabulary` (-1 missing), `uscc` the codes
    as 18 ASCII bytes each. The vocabulary is stored because a later release may extend it:
    the vector is read against the words it was written with. Stored uncompressed
    (`STORAGE EXTERNAL`, set by the migration): floats barely compress.
    """

    __tablename__ = "population_columns"

    run_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    dtype: Mapped[str] = mapped_column(String(8))
    vocabulary: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RuleMatch(Base):
    """One rule (`pool:<code>` or `policy:<code>`) matched against the population of a run.

    `statuses`: one byte per enterprise (position order), an index into `criteria.STATUSES`
    (0 eligible, 1 near, 2 ineligible, 3 unknown). `failing`: per enterprise,
    ceil(len(leaves) / 8) bytes, bit k (least significant first) set when it fails
    `leaves[k]`. `rule` and `near_max` are what was matched, so a status is explained from
    them even if the rule has changed since; `fingerprint` is the SHA-256 of the rule's
    canonical JSON. `counts` (per stage: the statuses, and on the near list how many fail each
    criterion) is what the pool pages read. `pushed` is false when the statuses were stored
    without making their pushes. Both vectors are stored uncompressed (`STORAGE EXTERNAL`, set
    by the migration) so that one enterprise's entry is read without the rest.
    """

    __tablename__ = "rule_matches"

    rule_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    version: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fingerprint: Mapped[str] = mapped_column(String(64))
    near_max: Mapped[int] = mapped_column(SmallInteger)
    leaves: Mapped[list[str]] = mapped_column(ARRAY(Text))
    enterprises: Mapped[int] = mapped_column(Integer)
    statuses: Mapped[bytes] = mapped_column(LargeBinary)
    failing: Mapped[bytes] = mapped_column(LargeBinary)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    pushed: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PushBatch(Base):
    """The pushes one recompute made: the rules they are for (a push names its rule by its
    index here) with their titles as pushed, the run matched, and when.

    Pushes are stored per enterprise and batch (`PushSet`), not one row each: a first
    evaluation of a million enterprises makes ten million pushes, which took 148 s to write
    as rows (at load 8-10, BENCHMARKS.md) against seconds for a million sets. The view
    `policy.pushes` (created by the migration) shows them as one row per push, `(id, uscc,
    rule_key, title, status, run_id, created_at, read_at)`, as the table was.
    """

    __tablename__ = "push_batches"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    rule_keys: Mapped[list[str]] = mapped_column(ARRAY(Text))
    titles: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PushSet(Base):
    """An enterprise's pushes of one batch (一键配: a match newly eligible, or newly near).

    Push k of the set has the id `first_id + k`, the rule `rule_keys[rules[k]]` of its batch
    and the status `statuses[k]` (an index into `criteria.STATUSES`); ids are taken from the
    sequence `policy.push_ids` a batch at a time, in the order enterprise, rule key. Keyed by
    enterprise: its feed (newest first), a push it marks read and the check that a match was
    pushed before all read this one index.
    """

    __tablename__ = "push_sets"
    __table_args__ = (PrimaryKeyConstraint("uscc", "first_id", name="pk_push_sets"),)

    uscc: Mapped[str] = mapped_column(String(18))
    first_id: Mapped[int] = mapped_column(BigInteger)
    # No foreign key: its check, row by row, would cost the write what the sets saved.
    batch_id: Mapped[int] = mapped_column(BigInteger)
    rules: Mapped[bytes] = mapped_column(LargeBinary)
    statuses: Mapped[bytes] = mapped_column(LargeBinary)


class PushRead(Base):
    """When an enterprise marked one of its pushes read (a push not here is unread)."""

    __tablename__ = "push_reads"
    __table_args__ = (PrimaryKeyConstraint("uscc", "id", name="pk_push_reads"),)

    uscc: Mapped[str] = mapped_column(String(18))
    id: Mapped[int] = mapped_column(BigInteger)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
