"""Explanations stored with each score (issue 11)

`scores.explain`: what a score's reasons, improvements and targets depend on besides the row
and the run, computed once in the evaluation's vectorised batch (see
`services.scoring.engine.explain_codes`). Rows of runs evaluated before this revision have
none; their explanations are computed when read, as before.

Revision ID: 5b7e2c9a1d40
Revises: b7d41e96c0a3
Create Date: 2026-12-01 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2c9a1d40"
down_revision: str | None = "b7d41e96c0a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a catalogue change only, on the parent and every partition.
    op.add_column("scores", sa.Column("explain", sa.LargeBinary(), nullable=True), schema="scoring")


def downgrade() -> None:
    op.drop_column("scores", "explain", schema="scoring")
