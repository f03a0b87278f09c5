"""interactions: the cost of goods of their line items, stored at write time

Revision ID: 0014_interaction_costs
Revises: 0013_idempotency_owner
Create Date: 2026-12-03 17:30:00.000000+00:00

Profitability (the KPIs, a customer's profitability, profit segment conditions) summed each
interaction's items, joining and grouping millions of line items per read. Interactions and
their items never change, so the two figures the reads need are computed once when the
interaction is written and kept on its row: `items_cost` (quantity x unit_cost over the
items with a cost) and `costed_amount` (the amount times the share of the items' value that
carries a cost, rounded half up to 12 places). Both unsigned; null when no item carries a
cost (and `costed_amount` when the items are worth nothing).

The backfill is this revision's own copy of the application's statement
(interactions/service.py ITEM_FIGURES_FROM_ITEMS): a migration must keep doing what it did
when the application changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_interaction_costs"
down_revision: str | None = "0013_idempotency_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("items_cost", sa.Numeric))
    op.add_column("interactions", sa.Column("costed_amount", sa.Numeric))
    op.execute(
        """
        UPDATE interactions i
           SET items_cost = f.items_cost,
               costed_amount = div(2 * i.amount * f.costed_value * 1e12 + f.value,
                                   2 * nullif(f.value, 0)) * 1e-12
          FROM (SELECT customer_id, interaction_id,
                       sum(quantity * unit_cost::numeric) AS items_cost,
                       sum(quantity * unit_price::numeric)
                           FILTER (WHERE unit_cost IS NOT NULL) AS costed_value,
                       sum(quantity * unit_price::numeric) AS value
                  FROM interaction_items
                 GROUP BY customer_id, interaction_id
                HAVING count(unit_cost) > 0) f
         WHERE i.customer_id = f.customer_id AND i.id = f.interaction_id
        """
    )


def downgrade() -> None:
    op.drop_column("interactions", "costed_amount")
    op.drop_column("interactions", "items_cost")
