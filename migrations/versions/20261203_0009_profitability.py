"""items' unit cost and interactions' service cost

Revision ID: 0009_profitability
Revises: 0008_interaction_sentiment
Create Date: 2026-12-03 14:30:00.000000+00:00

Both columns are nullable without a default, so adding them rewrites no rows; a cost not
given stays unknown (null), which profitability reports as less cost coverage, not as 0.
An interaction's currency now also prices its service cost: any interaction with an amount
or a service cost has a currency, and no other has one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_profitability"
down_revision: str | None = "0008_interaction_sentiment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_MONEY = "(amount IS NULL) = (currency IS NULL)"
_NEW_MONEY = "(currency IS NULL) = (amount IS NULL AND service_cost IS NULL)"


def upgrade() -> None:
    op.add_column("interactions", sa.Column("service_cost", sa.BigInteger))
    op.create_check_constraint(
        op.f("ck_interactions_service_cost_non_negative"), "interactions", "service_cost >= 0"
    )
    op.drop_constraint(op.f("ck_interactions_money"), "interactions")
    op.create_check_constraint(op.f("ck_interactions_money"), "interactions", _NEW_MONEY)
    op.add_column("interaction_items", sa.Column("unit_cost", sa.BigInteger))
    op.create_check_constraint(
        op.f("ck_interaction_items_unit_cost_non_negative"), "interaction_items", "unit_cost >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_interaction_items_unit_cost_non_negative"), "interaction_items")
    op.drop_column("interaction_items", "unit_cost")
    op.drop_constraint(op.f("ck_interactions_money"), "interactions")
    # Without service costs, a currency on an interaction without an amount prices nothing.
    op.execute("UPDATE interactions SET currency = NULL WHERE amount IS NULL")
    op.create_check_constraint(op.f("ck_interactions_money"), "interactions", _OLD_MONEY)
    op.drop_constraint(op.f("ck_interactions_service_cost_non_negative"), "interactions")
    op.drop_column("interactions", "service_cost")
