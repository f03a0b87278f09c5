"""interaction_items: the SKU index carries the category

Revision ID: 0015_items_sku_category
Revises: 0014_interaction_costs
Create Date: 2026-12-07 05:00:00.000000+00:00

The refresh of the recommendation rules looks up the categories of the frequent SKUs: with
an index on the SKU alone that fetched every line of those SKUs from the table (1.5M lines,
4.6 s of a refresh at 1M customers). An index on (sku, category) answers from the index and
serves every lookup by SKU the old one did, so it replaces it at no extra cost per write.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_items_sku_category"
down_revision: str | None = "0014_interaction_costs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_interaction_items_sku_category", "interaction_items", ["sku", "category"])
    op.drop_index("ix_interaction_items_sku", table_name="interaction_items")


def downgrade() -> None:
    op.create_index("ix_interaction_items_sku", "interaction_items", ["sku"])
    op.drop_index("ix_interaction_items_sku_category", table_name="interaction_items")
