"""model governance: stored validations, challenger reports, shadow runs, who published

Revision ID: b7d41e96c0a3
Revises: ee88c86cbd99
Create Date: 2026-12-01 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7d41e96c0a3"
down_revision: str | None = "ee88c86cbd99"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("scoring_models", sa.Column("published_by", sa.Text()), schema="scoring")
    op.add_column(
        "scoring_models", sa.Column("challenger_report_id", postgresql.UUID()), schema="scoring"
    )
    op.add_column(
        "evaluation_runs",
        sa.Column("shadow", sa.Boolean(), server_default="false", nullable=False),
        schema="scoring",
    )
    op.create_table(
        "validation_reports",
        sa.Column("id", postgresql.UUID(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("run_id", postgresql.UUID(), nullable=False),
        sa.Column("reference_run_id", postgresql.UUID(), nullable=True),
        sa.Column("outcomes_snapshot", sa.String(length=64), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("report", postgresql.JSONB(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring.evaluation_runs.id"],
            name=op.f("fk_validation_reports_run_id_evaluation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validation_reports")),
        schema="scoring",
    )
    op.create_index(
        "uq_validation_reports_key",
        "validation_reports",
        ["run_id", "reference_run_id", "outcomes_snapshot", "config_sha256"],
        unique=True,
        schema="scoring",
        postgresql_nulls_not_distinct=True,
    )
    op.create_index(
        "ix_validation_reports_model_period",
        "validation_reports",
        ["model_version", "period"],
        schema="scoring",
    )
    op.create_table(
        "challenger_reports",
        sa.Column("id", postgresql.UUID(), nullable=False),
        sa.Column("challenger_version", sa.String(length=32), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("shadow_run_id", postgresql.UUID(), nullable=False),
        sa.Column("champion_run_id", postgresql.UUID(), nullable=False),
        sa.Column("report", postgresql.JSONB(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["challenger_version"],
            ["scoring.scoring_models.version"],
            name=op.f("fk_challenger_reports_challenger_version_scoring_models"),
        ),
        sa.ForeignKeyConstraint(
            ["shadow_run_id"],
            ["scoring.evaluation_runs.id"],
            name=op.f("fk_challenger_reports_shadow_run_id_evaluation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["champion_run_id"],
            ["scoring.evaluation_runs.id"],
            name=op.f("fk_challenger_reports_champion_run_id_evaluation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenger_reports")),
        schema="scoring",
    )
    op.create_index(
        "ix_challenger_reports_version",
        "challenger_reports",
        ["challenger_version", "created_at"],
        schema="scoring",
    )


def downgrade() -> None:
    op.drop_table("challenger_reports", schema="scoring")
    op.drop_table("validation_reports", schema="scoring")
    op.drop_column("evaluation_runs", "shadow", schema="scoring")
    op.drop_column("scoring_models", "challenger_report_id", schema="scoring")
    op.drop_column("scoring_models", "published_by", schema="scoring")
