"""Realistic synthetic CRM data at scale, generated inside PostgreSQL (set-based SQL).

Customers of every kind across countries, with tags, custom attributes and consents;
each with a heterogeneous purchase history (a per-customer rate and a dropout point, as
buyers really behave: most buy rarely, a few often, many stop), line items across
categories (some vegetarian), and the rest of the timeline: emails, web and app visits,
support contacts and feedback with NPS/CSAT. Ids are random UUIDs: fine for measuring.
"""

from datetime import datetime

import asyncpg

# Per customer: a purchase rate (gamma-like, via -ln of a uniform to a power) and a
# dropout time; the other interactions are a multiple of the purchases.
CUSTOMERS = """
INSERT INTO customers (id, kind, first_name, last_name, company_name, email, country, city,
                       gender, income_band, interests, tags, attributes, consents,
                       acquisition_source, acquisition_channel, acquisition_cost,
                       acquisition_currency, created_at, updated_at)
SELECT gen_random_uuid(),
       k.kind,
       (ARRAY['Ada','Alan','Grace','Linus','Mia','Omar','Priya','Sven','Yara','Zoe'])[1 + g % 10],
       (ARRAY['Lovelace','Turing','Hopper','Okafor','Tanaka','Novak','Silva'])[1 + g % 7],
       CASE WHEN k.kind <> 'consumer' THEN 'Company ' || g END,
       'customer' || g || '@example.com',
       c.country, c.city,
       (ARRAY['female','male','non_binary','undisclosed'])[1 + g % 4],
       (ARRAY['0-25k','25-50k','50-75k','75-100k','100k+'])[1 + (g / 7) % 5],
       ARRAY[(ARRAY['running','cooking','travel','gaming','books','tech'])[1 + g % 6]],
       CASE WHEN g % 10 = 0 THEN ARRAY['vip','newsletter']
            WHEN g % 3 = 0 THEN ARRAY['newsletter'] ELSE ARRAY[]::text[] END,
       jsonb_build_object('loyalty_tier', (ARRAY['bronze','silver','gold'])[1 + g % 3],
                          'orders', g % 40, 'newsletter', g % 2 = 0),
       jsonb_build_object('email', jsonb_build_object('granted', g % 4 <> 0,
                                                      'at', '2024-01-01T00:00:00Z',
                                                      'source', 'signup-form')),
       (ARRAY['google','facebook','referral','organic'])[1 + g % 4],
       (ARRAY['paid_search','social','referral','web'])[1 + g % 4],
       (g % 5000)::bigint, 'EUR',
       $2::timestamptz - make_interval(days => (g % 1000)), $2::timestamptz
FROM generate_series(1, $1::int) g
CROSS JOIN LATERAL (SELECT CASE WHEN g % 20 = 0 THEN 'industrial'
                                WHEN g % 50 = 1 THEN 'institutional'
                                WHEN g % 97 = 2 THEN 'government'
                                ELSE 'consumer' END AS kind) k
CROSS JOIN LATERAL (SELECT (ARRAY['DE','FR','ES','IT','NL','PL','GB','US','JP','BR'])[1 + g % 10]
                           AS country,
                           (ARRAY['Berlin','Paris','Madrid','Rome','Amsterdam','Warsaw',
                                  'London','New York','Tokyo','Sao Paulo'])[1 + g % 10] AS city) c
"""

INTERACTIONS = """
WITH buyers AS (
    SELECT id, created_at,
           -- purchases over the customer's life: mostly few, some many
           least(60, floor(power(-ln(1 - random()), 2) * $1::float))::int AS purchases,
           -- the share of their time with us before they stopped buying
           CASE WHEN random() < 0.5 THEN random() ELSE 1.0 END AS alive
    FROM customers
)
INSERT INTO interactions (customer_id, id, type, channel, direction, occurred_at, subject,
                          campaign, amount, currency, nps, csat, recorded_at)
SELECT b.id, gen_random_uuid(), t.type,
       (ARRAY['email','web','app','phone','in_person','chat','social','sms'])
           [1 + floor(random() * 8)::int],
       CASE WHEN t.type IN ('email', 'sms') THEN 'outbound' ELSE 'inbound' END,
       b.created_at + (($2::timestamptz - b.created_at) * b.alive * random()),
       CASE WHEN t.type = 'support' THEN 'Help with my order' END,
       CASE WHEN t.type = 'email' THEN 'spring-sale' END,
       CASE WHEN t.type = 'purchase' THEN (500 + floor(random() * 20000))::bigint END,
       CASE WHEN t.type = 'purchase' THEN 'EUR' END,
       CASE WHEN t.type = 'feedback' THEN floor(random() * 11)::smallint END,
       CASE WHEN t.type = 'feedback' THEN (1 + floor(random() * 5))::smallint END,
       $2::timestamptz
FROM buyers b
CROSS JOIN LATERAL generate_series(1, b.purchases * 3 + 1) n
CROSS JOIN LATERAL (
    SELECT CASE WHEN n <= b.purchases THEN 'purchase'
                ELSE (ARRAY['email','email','web','web','app','visit','support','feedback',
                            'chat','note'])[1 + (n * 7 + length(b.id::text)) % 10]
           END AS type
) t
"""

ITEMS = """
INSERT INTO interaction_items (customer_id, interaction_id, line, sku, name, category,
                               quantity, unit_price)
SELECT i.customer_id, i.id, line, 'SKU-' || s.sku, 'Article ' || s.sku,
       (ARRAY['vegetarian','vegetarian','meat','dairy','bakery','drinks','household',
              'books'])[1 + s.sku % 8],
       1 + (s.sku % 3), greatest(1, i.amount / (1 + (line % 2)))
FROM interactions i
CROSS JOIN LATERAL generate_series(1, 1 + (hashtext(i.id::text) & 1)) line
CROSS JOIN LATERAL (SELECT abs(hashtext(i.id::text || line)) % 5000 AS sku) s
WHERE i.type = 'purchase'
"""


async def generate(
    conn: asyncpg.Connection, *, customers: int, mean_purchases: float, as_of: datetime
) -> dict[str, int]:
    """Fill an empty, migrated database; the row counts made."""
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(CUSTOMERS, customers, as_of)
    await conn.execute(INTERACTIONS, mean_purchases, as_of)
    await conn.execute(ITEMS)
    await conn.execute("VACUUM ANALYZE customers, interactions, interaction_items")
    return {
        table: await conn.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("customers", "interactions", "interaction_items")
    }
