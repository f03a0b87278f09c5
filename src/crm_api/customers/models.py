"""The customers table: one row per person or organisation the company deals with."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from crm_api.core.db import metadata

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("external_id", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("company_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("industry", sa.Text),
    sa.Column("birth_date", sa.Date),
    sa.Column("gender", sa.Text),
    sa.Column("income_band", sa.Text),
    sa.Column("education", sa.Text),
    sa.Column("occupation", sa.Text),
    sa.Column("address_line1", sa.Text),
    sa.Column("address_line2", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("region", sa.Text),
    sa.Column("postal_code", sa.Text),
    sa.Column("country", sa.CHAR(2)),
    sa.Column("interests", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("psych_values", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("lifestyle", sa.Text),
    sa.Column("preferred_channel", sa.Text),
    sa.Column("consents", JSONB, nullable=False, server_default="{}"),
    sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
    sa.Column("acquisition_source", sa.Text),
    sa.Column("acquisition_channel", sa.Text),
    sa.Column("acquisition_campaign", sa.Text),
    sa.Column("acquisition_cost", sa.BigInteger),
    sa.Column("acquisition_currency", sa.CHAR(3)),
    sa.Column("lifecycle_stage", sa.Text, nullable=False, server_default="prospect"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Column("erased_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "kind IN ('consumer', 'industrial', 'institutional', 'government')", name="kind"
    ),
    sa.CheckConstraint(
        "(acquisition_cost IS NULL) = (acquisition_currency IS NULL)", name="acquisition_money"
    ),
)

# Identifiers are unique among live customers only: deleting one frees its email.
sa.Index(
    "uq_customers_email_live",
    sa.func.lower(customers.c.email),
    unique=True,
    postgresql_where=sa.and_(customers.c.deleted_at.is_(None), customers.c.email.isnot(None)),
)
sa.Index(
    "uq_customers_external_id_live",
    customers.c.external_id,
    unique=True,
    postgresql_where=sa.and_(customers.c.deleted_at.is_(None), customers.c.external_id.isnot(None)),
)
sa.Index("ix_customers_created_at_id", customers.c.created_at, customers.c.id)
sa.Index("ix_customers_updated_at_id", customers.c.updated_at, customers.c.id)
sa.Index("ix_customers_tags", customers.c.tags, postgresql_using="gin")
# Deleted customers, few and only added to: aggregates over everyone's history take them
# out by this instead of looking up every customer.
sa.Index(
    "ix_customers_deleted", customers.c.id, postgresql_where=customers.c.deleted_at.isnot(None)
)
# Prefix search (`q`) over names, company and email: pattern ops let LIKE 'abc%' use them.
for _name, _column in (
    ("ix_customers_q_email", customers.c.email),
    ("ix_customers_q_last_name", customers.c.last_name),
    ("ix_customers_q_first_name", customers.c.first_name),
    ("ix_customers_q_company_name", customers.c.company_name),
):
    sa.Index(
        _name,
        sa.func.lower(_column).label(_name),
        postgresql_ops={_name: "text_pattern_ops"},
    )
