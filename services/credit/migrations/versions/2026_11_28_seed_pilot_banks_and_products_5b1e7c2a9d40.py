"""seed the Binjiang pilot banks and their published products

The three banks of the Binjiang pilot and one published innovation-points product each, in a
migration so every database (development, tests, production) starts with the same reference
data exactly once. Hotlines are the banks' national customer-service numbers. The line rule is
the PROPOSAL of domain.md section 3 (by within-stage percentile band, 500,000 CNY base).

Revision ID: 5b1e7c2a9d40
Revises: 0bdc42ea9faf
Create Date: 2026-11-28 09:00:00
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "5b1e7c2a9d40"
down_revision: str | None = "0bdc42ea9faf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = ["seed", "seedling", "growth", "expansion", "mature"]
RULE = {
    "basis": "percentile",
    "base_amount": 500_000,
    "bands": [
        {"min": 0.9, "amount": 10_000_000},
        {"min": 0.7, "amount": 3_000_000},
        {"min": 0.4, "amount": 1_000_000},
    ],
}
BANKS = [
    ("icbc-binjiang", "中国工商银行杭州滨江支行", "ICBC Hangzhou Binjiang Sub-branch", "95588"),
    (
        "hzub-binjiang",
        "杭州联合银行滨江支行",
        "Hangzhou United Rural Commercial Bank Binjiang Sub-branch",
        "96592",
    ),
    ("hzbank-binjiang", "杭州银行滨江支行", "Bank of Hangzhou Binjiang Sub-branch", "95398"),
]
# (product id, bank, name, description, rate_min, rate_max)
PRODUCTS = [
    (
        "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
        "icbc-binjiang",
        "工银科创积分贷",
        "Pure-credit revolving line for scored technology enterprises (ICBC).",
        2.90,
        3.85,
    ),
    (
        "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f02",
        "hzub-binjiang",
        "联合创新积分贷",
        "Pure-credit revolving line for scored technology enterprises (Hangzhou United Bank).",
        3.00,
        4.10,
    ),
    (
        "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
        "hzbank-binjiang",
        "杭银科创积分贷",
        "Pure-credit revolving line for scored technology enterprises (Bank of Hangzhou).",
        2.88,
        3.95,
    ),
]

banks = sa.table(
    "banks",
    sa.column("id", sa.String),
    sa.column("name", sa.Text),
    sa.column("name_en", sa.Text),
    sa.column("hotline", sa.String),
    schema="credit",
)
products = sa.table(
    "products",
    sa.column("id", UUID),
    sa.column("bank_id", sa.String),
    sa.column("status", sa.String),
    sa.column("published_version", sa.Integer),
    sa.column("latest_version", sa.Integer),
    sa.column("created_by", sa.Text),
    schema="credit",
)
versions = sa.table(
    "product_versions",
    sa.column("product_id", UUID),
    sa.column("version", sa.Integer),
    sa.column("name", sa.Text),
    sa.column("description", sa.Text),
    sa.column("eligible_stages", ARRAY(sa.String)),
    sa.column("min_tier", sa.SmallInteger),
    sa.column("min_percentile", sa.Double),
    sa.column("line_rule", JSONB),
    sa.column("max_amount", sa.BigInteger),
    sa.column("rate_min", sa.Double),
    sa.column("rate_max", sa.Double),
    sa.column("term_months", sa.SmallInteger),
    sa.column("guarantee", sa.String),
    sa.column("valid_from", sa.Date),
    sa.column("valid_to", sa.Date),
    sa.column("created_by", sa.Text),
    sa.column("published_at", sa.DateTime(timezone=True)),
    schema="credit",
)


def upgrade() -> None:
    op.bulk_insert(
        banks,
        [{"id": i, "name": n, "name_en": e, "hotline": h} for i, n, e, h in BANKS],
    )
    op.bulk_insert(
        products,
        [
            {
                "id": pid,
                "bank_id": bank,
                "status": "published",
                "published_version": 1,
                "latest_version": 1,
                "created_by": "seed",
            }
            for pid, bank, *_ in PRODUCTS
        ],
    )
    op.bulk_insert(
        versions,
        [
            {
                "product_id": pid,
                "version": 1,
                "name": name,
                "description": desc,
                "eligible_stages": STAGES,
                "min_tier": None,
                "min_percentile": None,
                "line_rule": RULE,
                "max_amount": 10_000_000,
                "rate_min": rmin,
                "rate_max": rmax,
                "term_months": 12,
                "guarantee": "pure_credit",
                "valid_from": date(2025, 1, 1),
                "valid_to": None,
                "created_by": "seed",
            }
            for pid, _bank, name, desc, rmin, rmax in PRODUCTS
        ],
    )
    op.execute("UPDATE credit.product_versions SET published_at = now() WHERE created_by = 'seed'")


def downgrade() -> None:
    ids = ", ".join(f"'{p[0]}'" for p in PRODUCTS)
    op.execute(f"DELETE FROM credit.products WHERE id IN ({ids})")
    op.execute(
        "DELETE FROM credit.banks WHERE id IN ('icbc-binjiang', 'hzub-binjiang', 'hzbank-binjiang')"
    )
