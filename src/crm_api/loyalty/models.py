"""Loyalty tables: programmes and rewards (reference data), accounts, and the ledger.

The ledger is `loyalty_entries` (append-only; a trigger in the migration refuses UPDATE
and DELETE). Earned points form lots; `loyalty_lot_uses` records which lots each debit
took points from (and each reversal returned them to), so expiry is exact per lot and a
reversed redemption puts its points back where they came from.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.core.db import metadata


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    ]


loyalty_programs = sa.Table(
    "loyalty_programs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("points_per_unit", sa.Numeric, nullable=False),
    sa.Column("rounding", sa.Text, nullable=False),
    sa.Column("auto_earn", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("expiry_days", sa.Integer),  # null: points never expire
    sa.Column("lock_days", sa.Integer, nullable=False, server_default="0"),
    # [{name, threshold, multiplier}], thresholds strictly increasing (schemas.py checks).
    sa.Column("tiers", JSONB, nullable=False, server_default="[]"),
    sa.Column("tier_window_days", sa.Integer, nullable=False, server_default="365"),
    sa.Column("downgrade", sa.Text, nullable=False, server_default="never"),
    sa.Column("downgrade_every_days", sa.Integer),
    *_timestamps(),
    sa.CheckConstraint("points_per_unit > 0", name="points_per_unit_positive"),
    sa.CheckConstraint("rounding IN ('floor', 'nearest', 'ceil')", name="rounding"),
    sa.CheckConstraint("expiry_days > 0", name="expiry_days_positive"),
    sa.CheckConstraint("lock_days >= 0", name="lock_days_non_negative"),
    sa.CheckConstraint("tier_window_days > 0", name="tier_window_days_positive"),
    sa.CheckConstraint("downgrade IN ('never', 'reevaluate')", name="downgrade"),
    sa.CheckConstraint(
        "(downgrade = 'reevaluate') = (downgrade_every_days IS NOT NULL)",
        name="downgrade_every_days_fits",
    ),
    sa.CheckConstraint("downgrade_every_days > 0", name="downgrade_every_days_positive"),
)
sa.Index("uq_loyalty_programs_name", sa.func.lower(loyalty_programs.c.name), unique=True)
sa.Index("ix_loyalty_programs_created_at_id", loyalty_programs.c.created_at, loyalty_programs.c.id)
# Auto-earn looks programmes up by currency on every purchase.
sa.Index(
    "ix_loyalty_programs_auto_earn",
    loyalty_programs.c.currency,
    postgresql_where=loyalty_programs.c.auto_earn,
)

loyalty_rewards = sa.Table(
    "loyalty_rewards",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "program_id",
        sa.Uuid,
        sa.ForeignKey("loyalty_programs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("cost", sa.BigInteger, nullable=False),
    sa.Column("stock", sa.Integer),  # null: unlimited
    sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
    *_timestamps(),
    sa.CheckConstraint("cost > 0", name="cost_positive"),
    sa.CheckConstraint("stock >= 0", name="stock_non_negative"),
)
sa.Index(
    "ix_loyalty_rewards_program_created",
    loyalty_rewards.c.program_id,
    loyalty_rewards.c.created_at,
    loyalty_rewards.c.id,
)

loyalty_accounts = sa.Table(
    "loyalty_accounts",
    metadata,
    sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("program_id", sa.Uuid, sa.ForeignKey("loyalty_programs.id"), nullable=False),
    # The sum of the ledger and of the lots' remaining points.
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lifetime_earned", sa.BigInteger, nullable=False, server_default="0"),
    # The seq of the account's latest entry: the next entry takes last_seq + 1.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tier", sa.Text),
    sa.Column("tier_since", sa.DateTime(timezone=True)),
    sa.Column("tier_reviewed_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.CheckConstraint("balance >= 0", name="balance_non_negative"),
    sa.UniqueConstraint("customer_id", "program_id"),
)
sa.Index("ix_loyalty_accounts_id", loyalty_accounts.c.id)
sa.Index(
    "ix_loyalty_accounts_program_created",
    loyalty_accounts.c.program_id,
    loyalty_accounts.c.created_at,
    loyalty_accounts.c.id,
)

loyalty_entries = sa.Table(
    "loyalty_entries",
    metadata,
    sa.Column("customer_id", sa.Uuid, primary_key=True),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("program_id", sa.Uuid, sa.ForeignKey("loyalty_programs.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    # What tier windows sum: an earn's points, minus those of a reversed earn, else 0.
    sa.Column("qualifying_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reference", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("reward_id", sa.Uuid, sa.ForeignKey("loyalty_rewards.id")),
    sa.Column("reward_quantity", sa.Integer),
    sa.Column("reverses_id", sa.Uuid),
    sa.Column("interaction_id", sa.Uuid),
    sa.Column("amount", sa.BigInteger),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("multiplier", sa.Numeric),
    # A refund's reversal that the balance could not cover in full: the points left over.
    sa.Column("uncovered_points", sa.BigInteger),
    sa.Column("actor_key_id", sa.Uuid),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ["customer_id", "account_id"],
        ["loyalty_accounts.customer_id", "loyalty_accounts.id"],
        name="fk_loyalty_entries_account",
    ),
    sa.CheckConstraint("kind IN ('earn', 'redeem', 'expire', 'adjust', 'reverse')", name="kind"),
    sa.CheckConstraint("points <> 0", name="points_non_zero"),
    sa.CheckConstraint(
        "(kind = 'earn' AND points > 0) OR (kind IN ('redeem', 'expire') AND points < 0)"
        " OR kind IN ('adjust', 'reverse')",
        name="points_sign",
    ),
    sa.CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
    sa.CheckConstraint(
        "kind NOT IN ('adjust', 'reverse') OR length(btrim(reason)) > 0", name="reason_required"
    ),
    sa.CheckConstraint("(kind = 'reverse') = (reverses_id IS NOT NULL)", name="reverses"),
    sa.CheckConstraint("(amount IS NULL) = (currency IS NULL)", name="money"),
    sa.UniqueConstraint("customer_id", "account_id", "seq"),
)
sa.Index("ix_loyalty_entries_id", loyalty_entries.c.id)
# Tier windows: qualifying points of one account since a moment.
sa.Index(
    "ix_loyalty_entries_window",
    loyalty_entries.c.customer_id,
    loyalty_entries.c.account_id,
    loyalty_entries.c.occurred_at,
)
sa.Index(
    "ix_loyalty_entries_reverses",
    loyalty_entries.c.customer_id,
    loyalty_entries.c.reverses_id,
    postgresql_where=loyalty_entries.c.reverses_id.isnot(None),
)
# One entry per key and caller on an account, even after the stored response expired.
sa.Index(
    "uq_loyalty_entries_idempotency",
    loyalty_entries.c.customer_id,
    loyalty_entries.c.account_id,
    loyalty_entries.c.actor_key_id,
    loyalty_entries.c.idempotency_key,
    unique=True,
    postgresql_where=loyalty_entries.c.idempotency_key.isnot(None),
)
# A purchase earns once per programme, a refund reverses once.
sa.Index(
    "uq_loyalty_entries_interaction",
    loyalty_entries.c.customer_id,
    loyalty_entries.c.interaction_id,
    loyalty_entries.c.kind,
    loyalty_entries.c.account_id,
    unique=True,
    postgresql_where=loyalty_entries.c.interaction_id.isnot(None),
)

loyalty_lots = sa.Table(
    "loyalty_lots",
    metadata,
    sa.Column("customer_id", sa.Uuid, primary_key=True),
    sa.Column("entry_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("remaining", sa.BigInteger, nullable=False),
    # The indexes select lots by this flag rather than by ``remaining > 0``: a column an
    # index reads (in its predicate too) makes every change of it a non-HOT update, and a
    # lot spent a point at a time piled up a new index entry per redemption. The flag only
    # changes when the lot runs dry or is refilled. The table's fillfactor (migration
    # 0007) leaves its pages room for those in-page updates.
    sa.Column(
        "has_points", sa.Boolean, sa.Computed("remaining > 0", persisted=True), nullable=False
    ),
    sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.ForeignKeyConstraint(
        ["customer_id", "entry_id"],
        ["loyalty_entries.customer_id", "loyalty_entries.id"],
        name="fk_loyalty_lots_entry",
    ),
    sa.CheckConstraint("points > 0", name="points_positive"),
    sa.CheckConstraint("remaining BETWEEN 0 AND points", name="remaining_within_points"),
)
# Lots that can fall due: those with points left and an expiry date (a programme
# without expiry writes to neither index). The first serves the expiry job across all
# accounts; the second tells a write whether its account has lots due, in one probe
# however many lots the account holds (the account's lots in spending order took a
# scan of them all: 3.3 ms at 9,700 lots).
_can_fall_due = sa.and_(loyalty_lots.c.has_points, loyalty_lots.c.expires_at.is_not(None))
sa.Index("ix_loyalty_lots_due", loyalty_lots.c.expires_at, postgresql_where=_can_fall_due)
sa.Index(
    "ix_loyalty_lots_account_due",
    loyalty_lots.c.customer_id,
    loyalty_lots.c.account_id,
    loyalty_lots.c.expires_at,
    postgresql_where=_can_fall_due,
)
# Spending order, over the lots with points left only: spent ones drop out of it.
sa.Index(
    "ix_loyalty_lots_fifo",
    loyalty_lots.c.customer_id,
    loyalty_lots.c.account_id,
    loyalty_lots.c.earned_at,
    loyalty_lots.c.entry_id,
    postgresql_where=loyalty_lots.c.has_points,
)

loyalty_lot_uses = sa.Table(
    "loyalty_lot_uses",
    metadata,
    sa.Column("customer_id", sa.Uuid, primary_key=True),
    sa.Column("entry_id", sa.Uuid, primary_key=True),
    sa.Column("lot_entry_id", sa.Uuid, primary_key=True),
    # Taken from the lot (> 0), or given back to it by a reversal (< 0).
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.CheckConstraint("points <> 0", name="points_non_zero"),
)
