"""who published a policy version and who archived a policy

The person's name (the principal's actor) is recorded beside the time, so a publication or
withdrawal is audited with who did it. Existing rows keep NULL: who did it then is unknown.

Revision ID: 3c5f1e8a9d27
Revises: 7d2e9a41c3b8
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c5f1e8a9d27"
down_revision: str | None = "7d2e9a41c3b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "policy_versions", sa.Column("published_by", sa.Text(), nullable=True), schema="policy"
    )
    op.add_column("policies", sa.Column("archived_by", sa.Text(), nullable=True), schema="policy")


def downgrade() -> None:
    op.drop_column("policies", "archived_by", schema="policy")
    op.drop_column("policy_versions", "published_by", schema="policy")
