"""Public notice and objections, provenance of every value, district (issue 12)

Runs get a notice (公示) and the run they correct; objections (异议) with evidence files;
`sources` and one `sources` array per facts row (aligned with the value columns) with an
append-only `fact_changes`; the sources each score was computed from; an audit log; the
enterprise's district. Values imported before this revision have no recorded source.

Revision ID: ee88c86cbd99
Revises: c6f83514d2d9
Create Date: 2026-12-01 04:31:20.207760
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ee88c86cbd99"
down_revision: str | None = "c6f83514d2d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        schema="scoring",
    )
    op.create_index(
        "ix_audit_events_subject",
        "audit_events",
        ["subject_type", "subject_id", "id"],
        unique=False,
        schema="scoring",
    )
    op.create_table(
        "fact_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("old_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("old_source_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_changes")),
        schema="scoring",
    )
    op.create_index(
        "ix_fact_changes_value",
        "fact_changes",
        ["uscc", "period", "field", "id"],
        unique=False,
        schema="scoring",
    )
    op.create_table(
        "objections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("run_value", sa.Double(), nullable=True),
        sa.Column("run_source_id", sa.Integer(), nullable=True),
        sa.Column("claimed_value", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("corrected_value", sa.Double(), nullable=True),
        sa.Column("correction_source_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring.evaluation_runs.id"],
            name=op.f("fk_objections_run_id_evaluation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
        schema="scoring",
    )
    op.create_index(
        "ix_objections_run_status",
        "objections",
        ["run_id", "status"],
        unique=False,
        schema="scoring",
    )
    op.create_index(
        "ix_objections_uscc", "objections", ["uscc", "created_at"], unique=False, schema="scoring"
    )
    op.create_index(
        "uq_objections_open_value",
        "objections",
        ["run_id", "uscc", "field"],
        unique=True,
        schema="scoring",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "objection_evidence",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("objection_id", sa.UUID(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["objection_id"],
            ["scoring.objections.id"],
            name=op.f("fk_objection_evidence_objection_id_objections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection_evidence")),
        schema="scoring",
    )
    op.create_index(
        op.f("ix_scoring_objection_evidence_objection_id"),
        "objection_evidence",
        ["objection_id"],
        unique=False,
        schema="scoring",
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("precedence", sa.SmallInteger(), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=True),
        sa.Column("import_id", sa.UUID(), nullable=True),
        sa.Column("objection_id", sa.UUID(), nullable=True),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"], ["scoring.imports.id"], name=op.f("fk_sources_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["objection_id"],
            ["scoring.objections.id"],
            name=op.f("fk_sources_objection_id_objections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        schema="scoring",
    )
    op.add_column("enterprises", sa.Column("district", sa.Text(), nullable=True), schema="scoring")
    op.add_column(
        "evaluation_runs", sa.Column("corrects_run_id", sa.UUID(), nullable=True), schema="scoring"
    )
    op.add_column(
        "evaluation_runs",
        sa.Column("notice_opened_at", sa.DateTime(timezone=True), nullable=True),
        schema="scoring",
    )
    op.add_column(
        "evaluation_runs", sa.Column("notice_opened_by", sa.Text(), nullable=True), schema="scoring"
    )
    op.add_column(
        "evaluation_runs",
        sa.Column("notice_ends_at", sa.DateTime(timezone=True), nullable=True),
        schema="scoring",
    )
    op.add_column(
        "evaluation_runs", sa.Column("published_by", sa.Text(), nullable=True), schema="scoring"
    )
    op.create_index(
        "uq_evaluation_runs_notice_period",
        "evaluation_runs",
        ["period"],
        unique=True,
        schema="scoring",
        postgresql_where=sa.text("status = 'in_notice'"),
    )
    op.create_foreign_key(
        op.f("fk_evaluation_runs_corrects_run_id_evaluation_runs"),
        "evaluation_runs",
        "evaluation_runs",
        ["corrects_run_id"],
        ["id"],
        source_schema="scoring",
        referent_schema="scoring",
    )
    op.add_column(
        "facts", sa.Column("sources", sa.ARRAY(sa.Integer()), nullable=True), schema="scoring"
    )
    op.add_column(
        "imports",
        sa.Column("values_kept", sa.Integer(), server_default="0", nullable=False),
        schema="scoring",
    )
    op.add_column("imports", sa.Column("as_of", sa.Date(), nullable=True), schema="scoring")
    op.add_column(
        "scores",
        sa.Column("value_sources", sa.ARRAY(sa.Integer()), nullable=True),
        schema="scoring",
    )
    op.add_column(
        "scores", sa.Column("revenue_source", sa.Integer(), nullable=True), schema="scoring"
    )


def downgrade() -> None:
    # A run in notice was a completed run before this revision.
    op.execute("UPDATE scoring.evaluation_runs SET status = 'completed' WHERE status = 'in_notice'")
    op.drop_column("scores", "revenue_source", schema="scoring")
    op.drop_column("scores", "value_sources", schema="scoring")
    op.drop_column("imports", "as_of", schema="scoring")
    op.drop_column("imports", "values_kept", schema="scoring")
    op.drop_column("facts", "sources", schema="scoring")
    op.drop_constraint(
        op.f("fk_evaluation_runs_corrects_run_id_evaluation_runs"),
        "evaluation_runs",
        schema="scoring",
        type_="foreignkey",
    )
    op.drop_index(
        "uq_evaluation_runs_notice_period",
        table_name="evaluation_runs",
        schema="scoring",
        postgresql_where=sa.text("status = 'in_notice'"),
    )
    op.drop_column("evaluation_runs", "published_by", schema="scoring")
    op.drop_column("evaluation_runs", "notice_ends_at", schema="scoring")
    op.drop_column("evaluation_runs", "notice_opened_by", schema="scoring")
    op.drop_column("evaluation_runs", "notice_opened_at", schema="scoring")
    op.drop_column("evaluation_runs", "corrects_run_id", schema="scoring")
    op.drop_column("enterprises", "district", schema="scoring")
    op.drop_table("sources", schema="scoring")
    op.drop_index(
        op.f("ix_scoring_objection_evidence_objection_id"),
        table_name="objection_evidence",
        schema="scoring",
    )
    op.drop_table("objection_evidence", schema="scoring")
    op.drop_index(
        "uq_objections_open_value",
        table_name="objections",
        schema="scoring",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index("ix_objections_uscc", table_name="objections", schema="scoring")
    op.drop_index("ix_objections_run_status", table_name="objections", schema="scoring")
    op.drop_table("objections", schema="scoring")
    op.drop_index("ix_fact_changes_value", table_name="fact_changes", schema="scoring")
    op.drop_table("fact_changes", schema="scoring")
    op.drop_index("ix_audit_events_subject", table_name="audit_events", schema="scoring")
    op.drop_table("audit_events", schema="scoring")
