"""loyalty_lots: lots due found per account by index; lots without expiry left out

Revision ID: 0016_loyalty_lots_account_due
Revises: 0015_items_sku_category
Create Date: 2026-12-07 07:15:00.000000+00:00

Every ledger write asks whether its account has lots past their expiry. The only index
that led with the account was the spending order, so the question read every lot with
points left: an account that earned 9,700 times took 3.3 ms a write, and a busy account
slowed down with each earn. An index on (customer_id, account_id, expires_at) answers
it in one probe. Both due indexes now leave out lots that never expire, which the
questions exclude anyway, so a programme without expiry writes to neither.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_loyalty_lots_account_due"
down_revision: str | None = "0015_items_sku_category"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CAN_FALL_DUE = sa.text("has_points AND expires_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_loyalty_lots_due", table_name="loyalty_lots")
    op.create_index(
        "ix_loyalty_lots_due", "loyalty_lots", ["expires_at"], postgresql_where=_CAN_FALL_DUE
    )
    op.create_index(
        "ix_loyalty_lots_account_due",
        "loyalty_lots",
        ["customer_id", "account_id", "expires_at"],
        postgresql_where=_CAN_FALL_DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_loyalty_lots_account_due", table_name="loyalty_lots")
    op.drop_index("ix_loyalty_lots_due", table_name="loyalty_lots")
    op.create_index(
        "ix_loyalty_lots_due",
        "loyalty_lots",
        ["expires_at"],
        postgresql_where=sa.text("has_points"),
    )
