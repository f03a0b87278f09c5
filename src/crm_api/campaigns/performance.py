"""Campaign performance in one set-based statement, for any set of campaigns.

The statement is built around a `chosen` CTE naming the campaigns to measure: by id for
the performance read (one or a GraphQL page of them), by start date for the KPIs. Every
figure is defined in ``schemas.CampaignPerformance``.
"""

import sqlalchemy as sa

from crm_api.core.db import Compiled

_PER_CAMPAIGN = """
live AS (
    SELECT id, code, starts_at, coalesce(ends_at, now()) AS until, attribution_window_days
    FROM campaigns WHERE deleted_at IS NULL
),
-- Each touched customer once, with the span in which the campaign's touches may win
-- their purchases.
reached AS (
    SELECT c.id AS campaign_id, i.customer_id, min(i.occurred_at) AS first_touch,
        max(i.occurred_at) + make_interval(days => c.attribution_window_days) AS window_end
    FROM chosen c
    JOIN interactions i ON i.campaign = c.code
        AND i.occurred_at >= c.starts_at AND i.occurred_at <= coalesce(c.ends_at, now())
    WHERE i.direction = 'outbound'
    GROUP BY c.id, c.attribution_window_days, i.customer_id
),
labelled AS (
    SELECT c.id AS campaign_id, i.customer_id, i.id, i.type, i.direction, i.amount, i.currency
    FROM chosen c
    JOIN interactions i ON i.campaign = c.code AND i.occurred_at >= c.starts_at
    WHERE i.type = 'purchase' OR i.direction = 'inbound'
),
-- Unlabelled purchases of touched customers, inside a window one of this campaign's touches
-- opens, whose latest in-window touch (of any live campaign) is this campaign's.
last_touched AS (
    SELECT r.campaign_id, p.customer_id, p.id, p.amount, p.currency
    FROM reached r
    JOIN interactions p ON p.customer_id = r.customer_id
        AND p.type = 'purchase' AND p.campaign IS NULL
        AND p.occurred_at > r.first_touch AND p.occurred_at <= r.window_end
    CROSS JOIN LATERAL (
        SELECT l.id
        FROM interactions t JOIN live l ON l.code = t.campaign
        WHERE t.customer_id = p.customer_id AND t.campaign IS NOT NULL
            AND t.direction = 'outbound'
            AND t.occurred_at < p.occurred_at
            AND t.occurred_at >= l.starts_at AND t.occurred_at <= l.until
            AND p.occurred_at <= t.occurred_at + make_interval(days => l.attribution_window_days)
        ORDER BY t.occurred_at DESC, t.id DESC
        LIMIT 1
    ) won
    WHERE won.id = r.campaign_id
),
purchases AS (
    SELECT campaign_id, customer_id, id, amount, currency FROM labelled WHERE type = 'purchase'
    UNION ALL
    SELECT campaign_id, customer_id, id, amount, currency FROM last_touched
),
sold AS (
    SELECT p.campaign_id,
        count(DISTINCT p.customer_id) AS conversions,
        count(*) FILTER (WHERE p.currency = c.currency) AS orders,
        coalesce(sum(p.amount) FILTER (WHERE p.currency = c.currency), 0) AS sales
    FROM purchases p JOIN chosen c ON c.id = p.campaign_id
    GROUP BY p.campaign_id
),
refunded AS (
    SELECT p.campaign_id, sum(f.amount) AS refunds
    FROM purchases p
    JOIN chosen c ON c.id = p.campaign_id
    JOIN interactions f ON f.customer_id = p.customer_id AND f.refund_of = p.id
    WHERE f.type = 'refund' AND f.currency = c.currency
    GROUP BY p.campaign_id
),
responded AS (
    SELECT campaign_id, count(DISTINCT customer_id) AS responses FROM (
        SELECT campaign_id, customer_id FROM labelled WHERE direction = 'inbound'
        UNION ALL
        SELECT campaign_id, customer_id FROM purchases
    ) answers
    GROUP BY campaign_id
),
performance AS (
    SELECT c.id AS campaign_id, c.currency, c.cost,
        c.starts_at AS touches_from, coalesce(c.ends_at, now()) AS touches_until,
        coalesce(r.reach, 0) AS reach,
        coalesce(a.responses, 0) AS responses,
        coalesce(s.conversions, 0) AS conversions,
        coalesce(s.orders, 0) AS orders,
        (coalesce(s.sales, 0) - coalesce(f.refunds, 0))::bigint AS revenue
    FROM chosen c
    LEFT JOIN (
        SELECT campaign_id, count(*) AS reach FROM reached GROUP BY campaign_id
    ) r ON r.campaign_id = c.id
    LEFT JOIN responded a ON a.campaign_id = c.id
    LEFT JOIN sold s ON s.campaign_id = c.id
    LEFT JOIN refunded f ON f.campaign_id = c.id
)"""

# Null, not a division by zero, without cost.
_ROI = "(revenue - cost)::float8 / nullif(cost, 0) AS roi"

_IDS = sa.bindparam("campaign_ids", type_=sa.ARRAY(sa.Uuid))
BY_ID = Compiled.of(
    sa.text(
        f"""WITH chosen AS (
            SELECT * FROM campaigns WHERE id = ANY(:campaign_ids) AND deleted_at IS NULL
        ),{_PER_CAMPAIGN}
        SELECT *, responses::float8 / nullif(reach, 0) AS response_rate,
            conversions::float8 / nullif(reach, 0) AS conversion_rate, {_ROI}
        FROM performance"""
    ).bindparams(_IDS)
)

# The KPIs' campaigns: those started in [start, end), of one segment when one is given;
# their cost and revenue summed per currency.
STARTED_IN = Compiled.of(
    sa.text(
        f"""WITH chosen AS (
            SELECT * FROM campaigns
            WHERE deleted_at IS NULL AND starts_at >= :start AND starts_at < :end
              AND (CAST(:segment_id AS uuid) IS NULL OR segment_id = CAST(:segment_id AS uuid))
        ),{_PER_CAMPAIGN}
        SELECT currency, cost, revenue, {_ROI} FROM (
            SELECT currency, sum(cost)::bigint AS cost, sum(revenue)::bigint AS revenue
            FROM performance GROUP BY currency
        ) totals"""
    ).bindparams(
        sa.bindparam("start", type_=sa.DateTime(timezone=True)),
        sa.bindparam("end", type_=sa.DateTime(timezone=True)),
        sa.bindparam("segment_id", type_=sa.Uuid),
    )
)
