"""foundation: customers, interactions, api keys, idempotency, events

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-23 09:47:16.104974+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_foundation"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("previous_hash", sa.LargeBinary(), nullable=True),
        sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index("ix_api_keys_created_at_id", "api_keys", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_api_keys_previous_hash",
        "api_keys",
        ["previous_hash"],
        unique=False,
        postgresql_where=sa.text("previous_hash IS NOT NULL"),
    )
    op.create_index("uq_api_keys_secret_hash", "api_keys", ["secret_hash"], unique=True)
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("industry", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("income_band", sa.Text(), nullable=True),
        sa.Column("education", sa.Text(), nullable=True),
        sa.Column("occupation", sa.Text(), nullable=True),
        sa.Column("address_line1", sa.Text(), nullable=True),
        sa.Column("address_line2", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("postal_code", sa.Text(), nullable=True),
        sa.Column("country", sa.CHAR(length=2), nullable=True),
        sa.Column("interests", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("psych_values", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("lifestyle", sa.Text(), nullable=True),
        sa.Column("preferred_channel", sa.Text(), nullable=True),
        sa.Column(
            "consents", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("acquisition_source", sa.Text(), nullable=True),
        sa.Column("acquisition_channel", sa.Text(), nullable=True),
        sa.Column("acquisition_campaign", sa.Text(), nullable=True),
        sa.Column("acquisition_cost", sa.BigInteger(), nullable=True),
        sa.Column("acquisition_currency", sa.CHAR(length=3), nullable=True),
        sa.Column("lifecycle_stage", sa.Text(), server_default="prospect", nullable=False),
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
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('consumer', 'industrial', 'institutional', 'government')",
            name=op.f("ck_customers_kind"),
        ),
        sa.CheckConstraint(
            "(acquisition_cost IS NULL) = (acquisition_currency IS NULL)",
            name=op.f("ck_customers_acquisition_money"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_created_at_id", "customers", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_customers_q_company_name",
        "customers",
        [sa.literal_column("lower(company_name)").label("ix_customers_q_company_name")],
        unique=False,
        postgresql_ops={"ix_customers_q_company_name": "text_pattern_ops"},
    )
    op.create_index(
        "ix_customers_q_email",
        "customers",
        [sa.literal_column("lower(email)").label("ix_customers_q_email")],
        unique=False,
        postgresql_ops={"ix_customers_q_email": "text_pattern_ops"},
    )
    op.create_index(
        "ix_customers_q_first_name",
        "customers",
        [sa.literal_column("lower(first_name)").label("ix_customers_q_first_name")],
        unique=False,
        postgresql_ops={"ix_customers_q_first_name": "text_pattern_ops"},
    )
    op.create_index(
        "ix_customers_q_last_name",
        "customers",
        [sa.literal_column("lower(last_name)").label("ix_customers_q_last_name")],
        unique=False,
        postgresql_ops={"ix_customers_q_last_name": "text_pattern_ops"},
    )
    op.create_index(
        "ix_customers_tags", "customers", ["tags"], unique=False, postgresql_using="gin"
    )
    op.create_index("ix_customers_updated_at_id", "customers", ["updated_at", "id"], unique=False)
    op.create_index(
        "uq_customers_email_live",
        "customers",
        [sa.literal_column("lower(email)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
    )
    op.create_index(
        "uq_customers_external_id_live",
        "customers",
        ["external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "tx_id",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_customer_feed", "events", ["customer_id", "tx_id", "seq"], unique=False
    )
    op.create_index("ix_events_feed", "events", ["tx_id", "seq"], unique=True)
    op.create_index("ix_events_type_feed", "events", ["type", "tx_id", "seq"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column(
            "locked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("api_key_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_table(
        "interactions",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("campaign", sa.Text(), nullable=True),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.CHAR(length=3), nullable=True),
        sa.Column("nps", sa.SmallInteger(), nullable=True),
        sa.Column("csat", sa.SmallInteger(), nullable=True),
        sa.CheckConstraint(
            "direction IS NULL OR direction IN ('inbound', 'outbound')",
            name=op.f("ck_interactions_direction"),
        ),
        sa.CheckConstraint(
            "(amount IS NULL) = (currency IS NULL)", name=op.f("ck_interactions_money")
        ),
        sa.CheckConstraint(
            "amount IS NULL OR amount >= 0", name=op.f("ck_interactions_amount_non_negative")
        ),
        sa.CheckConstraint(
            "csat IS NULL OR csat BETWEEN 1 AND 5", name=op.f("ck_interactions_csat_range")
        ),
        sa.CheckConstraint(
            "nps IS NULL OR nps BETWEEN 0 AND 10", name=op.f("ck_interactions_nps_range")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_interactions_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", "id", name=op.f("pk_interactions")),
    )
    op.create_index("ix_interactions_id", "interactions", ["id"], unique=False)
    op.create_index(
        "ix_interactions_occurred_at_id", "interactions", ["occurred_at", "id"], unique=False
    )
    op.create_index(
        "ix_interactions_timeline",
        "interactions",
        ["customer_id", sa.literal_column("occurred_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "uq_interactions_external_id",
        "interactions",
        ["customer_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "interaction_items",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.SmallInteger(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_interaction_items_quantity_positive")),
        sa.CheckConstraint(
            "unit_price >= 0", name=op.f("ck_interaction_items_unit_price_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "interaction_id"],
            ["interactions.customer_id", "interactions.id"],
            name="fk_interaction_items_interaction",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "interaction_id", "line", name=op.f("pk_interaction_items")
        ),
    )
    op.create_index("ix_interaction_items_sku", "interaction_items", ["sku"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_interaction_items_sku", table_name="interaction_items")
    op.drop_table("interaction_items")
    op.drop_index(
        "uq_interactions_external_id",
        table_name="interactions",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_interactions_timeline", table_name="interactions")
    op.drop_index("ix_interactions_occurred_at_id", table_name="interactions")
    op.drop_index("ix_interactions_id", table_name="interactions")
    op.drop_table("interactions")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_events_type_feed", table_name="events")
    op.drop_index("ix_events_feed", table_name="events")
    op.drop_index("ix_events_customer_feed", table_name="events")
    op.drop_table("events")
    op.drop_index(
        "uq_customers_external_id_live",
        table_name="customers",
        postgresql_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_customers_email_live",
        table_name="customers",
        postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
    )
    op.drop_index("ix_customers_updated_at_id", table_name="customers")
    op.drop_index("ix_customers_tags", table_name="customers", postgresql_using="gin")
    op.drop_index(
        "ix_customers_q_last_name",
        table_name="customers",
        postgresql_ops={"ix_customers_q_last_name": "text_pattern_ops"},
    )
    op.drop_index(
        "ix_customers_q_first_name",
        table_name="customers",
        postgresql_ops={"ix_customers_q_first_name": "text_pattern_ops"},
    )
    op.drop_index(
        "ix_customers_q_email",
        table_name="customers",
        postgresql_ops={"ix_customers_q_email": "text_pattern_ops"},
    )
    op.drop_index(
        "ix_customers_q_company_name",
        table_name="customers",
        postgresql_ops={"ix_customers_q_company_name": "text_pattern_ops"},
    )
    op.drop_index("ix_customers_created_at_id", table_name="customers")
    op.drop_table("customers")
    op.drop_index("uq_api_keys_secret_hash", table_name="api_keys")
    op.drop_index(
        "ix_api_keys_previous_hash",
        table_name="api_keys",
        postgresql_where=sa.text("previous_hash IS NOT NULL"),
    )
    op.drop_index("ix_api_keys_created_at_id", table_name="api_keys")
    op.drop_table("api_keys")
