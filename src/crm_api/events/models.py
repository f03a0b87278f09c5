"""The events outbox, written in the same transaction as the change it describes."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.core.db import metadata

# The service's numbering of transactions (migration 0018, crm_api/transaction_clock.py):
# PostgreSQL's transaction id plus an offset that a logical restore can move forward.
XACT_ID = "crm_xact_id()"
# Numbers below this belong to transactions older than every one still running in this
# database (the snapshot's xmin, leaving out other databases'): nothing they wrote can
# still appear.
SETTLED_BEFORE = sa.text("crm_settled_xact_id()")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Feed order is (tx_id, seq), tx_id being the writing transaction's number. A reader
    # only sees SETTLED transactions, so no event can appear behind a cursor later.
    sa.Column("tx_id", sa.BigInteger, nullable=False, server_default=sa.text(XACT_ID)),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column(
        "occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("customer_id", sa.Uuid),
    sa.Column("data", JSONB, nullable=False),
)
sa.Index("ix_events_feed", events.c.tx_id, events.c.seq, unique=True)
sa.Index("ix_events_customer_feed", events.c.customer_id, events.c.tx_id, events.c.seq)
sa.Index("ix_events_type_feed", events.c.type, events.c.tx_id, events.c.seq)
sa.Index("ix_events_occurred_at", events.c.occurred_at)  # webhook replays

# A trigger (migration 0002) notifies this channel once per transaction that adds events.
NOTIFY_CHANNEL = "crm_events"
