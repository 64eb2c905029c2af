"""an enterprise's facts read from the population's columns

`enterprise_facts.facts` (a JSON document per enterprise, the same facts as the columns of
`population_columns`) is no longer written: an enterprise's facts mapping is built from its
entry in the columns when an explanation needs it. The column stays, nullable, for a
population stored before the columns existed.

Revision ID: e4a7c1d9b052
Revises: 3c5f1e8a9d27
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e4a7c1d9b052"
down_revision: str | None = "3c5f1e8a9d27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("enterprise_facts", "facts", nullable=True, schema="policy")


def downgrade() -> None:
    # Rows stored since have no document: an empty one, until the next evaluation rewrites it.
    op.execute("UPDATE policy.enterprise_facts SET facts = '{}'::jsonb WHERE facts IS NULL")
    op.alter_column("enterprise_facts", "facts", nullable=False, schema="policy")
