"""who published a product version and who withdrew a product

Revision ID: 8e3f1a6c52d7
Revises: a13e0c7d5f21
Create Date: 2026-12-01 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e3f1a6c52d7"
down_revision: str | None = "a13e0c7d5f21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "product_versions", sa.Column("published_by", sa.Text(), nullable=True), schema="credit"
    )
    op.add_column("products", sa.Column("withdrawn_by", sa.Text(), nullable=True), schema="credit")
    # Versions published and products withdrawn before: who did it was not recorded, and a
    # guess (the creator) would be a false record; they stay null.


def downgrade() -> None:
    op.drop_column("products", "withdrawn_by", schema="credit")
    op.drop_column("product_versions", "published_by", schema="credit")
