"""loyalty: programmes, rewards, accounts and the append-only points ledger

Revision ID: 0005_loyalty
Revises: 0004_segments
Create Date: 2026-11-23 15:20:00.000000+00:00

Also adds `interactions.refund_of` (a refund names its purchase, so loyalty can take back
the points it earned) and a trigger that makes `loyalty_entries` append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_loyalty"
down_revision: str | None = "0004_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Corrections go in as new entries (adjust, reverse); the ledger itself never changes.
APPEND_ONLY = (
    """
CREATE FUNCTION loyalty_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'loyalty_entries is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Record an adjust or reverse entry instead.';
END
$$
""",
    """
CREATE TRIGGER loyalty_entries_append_only
    BEFORE UPDATE OR DELETE ON loyalty_entries
    FOR EACH ROW EXECUTE FUNCTION loyalty_entries_append_only()
""",
)


def upgrade() -> None:
    op.add_column("interactions", sa.Column("refund_of", sa.Uuid(), nullable=True))
    op.create_check_constraint(
        op.f("ck_interactions_refund_of_refunds"),
        "interactions",
        "refund_of IS NULL OR type = 'refund'",
    )
    op.create_table(
        "loyalty_lot_uses",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("lot_entry_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_loyalty_lot_uses_points_non_zero")),
        sa.PrimaryKeyConstraint(
            "customer_id", "entry_id", "lot_entry_id", name=op.f("pk_loyalty_lot_uses")
        ),
    )
    op.create_table(
        "loyalty_programs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("points_per_unit", sa.Numeric(), nullable=False),
        sa.Column("rounding", sa.Text(), nullable=False),
        sa.Column("auto_earn", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("lock_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "tiers", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("tier_window_days", sa.Integer(), server_default="365", nullable=False),
        sa.Column("downgrade", sa.Text(), server_default="never", nullable=False),
        sa.Column("downgrade_every_days", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "(downgrade = 'reevaluate') = (downgrade_every_days IS NOT NULL)",
            name=op.f("ck_loyalty_programs_downgrade_every_days_fits"),
        ),
        sa.CheckConstraint(
            "downgrade IN ('never', 'reevaluate')", name=op.f("ck_loyalty_programs_downgrade")
        ),
        sa.CheckConstraint(
            "rounding IN ('floor', 'nearest', 'ceil')", name=op.f("ck_loyalty_programs_rounding")
        ),
        sa.CheckConstraint(
            "downgrade_every_days > 0",
            name=op.f("ck_loyalty_programs_downgrade_every_days_positive"),
        ),
        sa.CheckConstraint(
            "expiry_days > 0", name=op.f("ck_loyalty_programs_expiry_days_positive")
        ),
        sa.CheckConstraint(
            "lock_days >= 0", name=op.f("ck_loyalty_programs_lock_days_non_negative")
        ),
        sa.CheckConstraint(
            "points_per_unit > 0", name=op.f("ck_loyalty_programs_points_per_unit_positive")
        ),
        sa.CheckConstraint(
            "tier_window_days > 0", name=op.f("ck_loyalty_programs_tier_window_days_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programs")),
    )
    op.create_index(
        "ix_loyalty_programs_auto_earn",
        "loyalty_programs",
        ["currency"],
        unique=False,
        postgresql_where=sa.text("auto_earn"),
    )
    op.create_index(
        "ix_loyalty_programs_created_at_id", "loyalty_programs", ["created_at", "id"], unique=False
    )
    op.create_index(
        "uq_loyalty_programs_name",
        "loyalty_programs",
        [sa.literal_column("lower(name)")],
        unique=True,
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier", sa.Text(), nullable=True),
        sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_loyalty_accounts_balance_non_negative")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_loyalty_accounts_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_accounts_program_id_loyalty_programs"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "id", name=op.f("pk_loyalty_accounts")),
        sa.UniqueConstraint(
            "customer_id", "program_id", name=op.f("uq_loyalty_accounts_customer_id_program_id")
        ),
    )
    op.create_index("ix_loyalty_accounts_id", "loyalty_accounts", ["id"], unique=False)
    op.create_index(
        "ix_loyalty_accounts_program_created",
        "loyalty_accounts",
        ["program_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "loyalty_rewards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint("cost > 0", name=op.f("ck_loyalty_rewards_cost_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_loyalty_rewards_stock_non_negative")),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_rewards_program_id_loyalty_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_rewards")),
    )
    op.create_index(
        "ix_loyalty_rewards_program_created",
        "loyalty_rewards",
        ["program_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "loyalty_entries",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("qualifying_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reward_id", sa.Uuid(), nullable=True),
        sa.Column("reward_quantity", sa.Integer(), nullable=True),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.CHAR(length=3), nullable=True),
        sa.Column("multiplier", sa.Numeric(), nullable=True),
        sa.Column("uncovered_points", sa.BigInteger(), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'earn' AND points > 0) OR (kind IN ('redeem', 'expire') AND points < 0)"
            " OR kind IN ('adjust', 'reverse')",
            name=op.f("ck_loyalty_entries_points_sign"),
        ),
        sa.CheckConstraint(
            "(kind = 'reverse') = (reverses_id IS NOT NULL)",
            name=op.f("ck_loyalty_entries_reverses"),
        ),
        sa.CheckConstraint(
            "kind IN ('earn', 'redeem', 'expire', 'adjust', 'reverse')",
            name=op.f("ck_loyalty_entries_kind"),
        ),
        sa.CheckConstraint(
            "kind NOT IN ('adjust', 'reverse') OR length(btrim(reason)) > 0",
            name=op.f("ck_loyalty_entries_reason_required"),
        ),
        sa.CheckConstraint(
            "(amount IS NULL) = (currency IS NULL)", name=op.f("ck_loyalty_entries_money")
        ),
        sa.CheckConstraint(
            "balance_after >= 0", name=op.f("ck_loyalty_entries_balance_after_non_negative")
        ),
        sa.CheckConstraint("points <> 0", name=op.f("ck_loyalty_entries_points_non_zero")),
        sa.ForeignKeyConstraint(
            ["customer_id", "account_id"],
            ["loyalty_accounts.customer_id", "loyalty_accounts.id"],
            name="fk_loyalty_entries_account",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_entries_program_id_loyalty_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["loyalty_rewards.id"],
            name=op.f("fk_loyalty_entries_reward_id_loyalty_rewards"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "id", name=op.f("pk_loyalty_entries")),
        sa.UniqueConstraint(
            "customer_id",
            "account_id",
            "seq",
            name=op.f("uq_loyalty_entries_customer_id_account_id_seq"),
        ),
    )
    op.create_index("ix_loyalty_entries_id", "loyalty_entries", ["id"], unique=False)
    op.create_index(
        "ix_loyalty_entries_reverses",
        "loyalty_entries",
        ["customer_id", "reverses_id"],
        unique=False,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_index(
        "ix_loyalty_entries_window",
        "loyalty_entries",
        ["customer_id", "account_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "uq_loyalty_entries_idempotency",
        "loyalty_entries",
        ["customer_id", "account_id", "actor_key_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "uq_loyalty_entries_interaction",
        "loyalty_entries",
        ["customer_id", "interaction_id", "kind", "account_id"],
        unique=True,
        postgresql_where=sa.text("interaction_id IS NOT NULL"),
    )
    op.create_table(
        "loyalty_lots",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_loyalty_lots_points_positive")),
        sa.CheckConstraint(
            "remaining BETWEEN 0 AND points", name=op.f("ck_loyalty_lots_remaining_within_points")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "entry_id"],
            ["loyalty_entries.customer_id", "loyalty_entries.id"],
            name="fk_loyalty_lots_entry",
        ),
        sa.PrimaryKeyConstraint("customer_id", "entry_id", name=op.f("pk_loyalty_lots")),
    )
    op.create_index(
        "ix_loyalty_lots_due",
        "loyalty_lots",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_loyalty_lots_fifo",
        "loyalty_lots",
        ["customer_id", "account_id", "earned_at", "entry_id"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )

    for statement in APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER loyalty_entries_append_only ON loyalty_entries")
    op.execute("DROP FUNCTION loyalty_entries_append_only()")
    op.drop_index(
        "ix_loyalty_lots_fifo", table_name="loyalty_lots", postgresql_where=sa.text("remaining > 0")
    )
    op.drop_index(
        "ix_loyalty_lots_due", table_name="loyalty_lots", postgresql_where=sa.text("remaining > 0")
    )
    op.drop_table("loyalty_lots")
    op.drop_index(
        "uq_loyalty_entries_interaction",
        table_name="loyalty_entries",
        postgresql_where=sa.text("interaction_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_loyalty_entries_idempotency",
        table_name="loyalty_entries",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_loyalty_entries_window", table_name="loyalty_entries")
    op.drop_index(
        "ix_loyalty_entries_reverses",
        table_name="loyalty_entries",
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.drop_index("ix_loyalty_entries_id", table_name="loyalty_entries")
    op.drop_table("loyalty_entries")
    op.drop_index("ix_loyalty_rewards_program_created", table_name="loyalty_rewards")
    op.drop_table("loyalty_rewards")
    op.drop_index("ix_loyalty_accounts_program_created", table_name="loyalty_accounts")
    op.drop_index("ix_loyalty_accounts_id", table_name="loyalty_accounts")
    op.drop_table("loyalty_accounts")
    op.drop_index("uq_loyalty_programs_name", table_name="loyalty_programs")
    op.drop_index("ix_loyalty_programs_created_at_id", table_name="loyalty_programs")
    op.drop_index(
        "ix_loyalty_programs_auto_earn",
        table_name="loyalty_programs",
        postgresql_where=sa.text("auto_earn"),
    )
    op.drop_table("loyalty_programs")
    op.drop_table("loyalty_lot_uses")

    op.drop_constraint(op.f("ck_interactions_refund_of_refunds"), "interactions", type_="check")
    op.drop_column("interactions", "refund_of")
