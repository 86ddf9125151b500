-- scan_summary --
-- The dashboard's scan figures: today (UTC) and the last 7 days, with the verdict mix of the week.
SELECT count(*) FILTER (WHERE scanned_at >= date_trunc('day', %(now)s::timestamptz)) AS today,
       count(*) AS week,
       count(*) FILTER (WHERE verdict = 'genuine_first') AS genuine_first,
       count(*) FILTER (WHERE verdict = 'genuine_repeat') AS genuine_repeat,
       count(*) FILTER (WHERE verdict = 'suspect_clone') AS suspect_clone,
       count(*) FILTER (WHERE verdict = 'not_activated') AS not_activated,
       (SELECT count(*) FROM counterfeit_scans c
        WHERE c.claimed_brand_id = %(brand_id)s AND c.scanned_at >= %(now)s - interval '7 days') AS counterfeit
FROM scans
WHERE brand_id = %(brand_id)s AND scanned_at >= %(now)s - interval '7 days' AND scanned_at <= %(now)s;

-- live_campaigns --
SELECT id, name, kind, status, spent_cents, budget_cents FROM campaigns
WHERE brand_id = %(brand_id)s AND status IN ('scheduled', 'active', 'paused')
ORDER BY priority DESC, name
LIMIT 20;

-- recent_batches --
-- The products page: the brand's newest batches with their product, how many codes shipments activated
-- and how many cases hold its items.
SELECT b.id, b.seq, b.lot, b.quantity, b.production_date, b.status, b.activation, b.created_at,
       p.name AS product_name,
       CASE WHEN b.activation = 'on_issue' THEN b.quantity
            ELSE (SELECT coalesce(sum(a.stop_index - a.start_index), 0) FROM activations a
                  WHERE a.batch_id = b.id) END::bigint AS activated,
       (SELECT count(DISTINCT i.aggregation_id) FROM aggregation_items i WHERE i.batch_id = b.id)::bigint AS cases
FROM batches b JOIN products p ON p.id = b.product_id
WHERE b.brand_id = %(brand_id)s
ORDER BY b.seq DESC LIMIT %(limit)s;

-- recent_shipments --
-- The shipments page (and a distributor's portal, scoped to it): newest first, with the distributor's name.
SELECT s.id, s.reference, s.items, s.shipped_at, s.received_at, d.name AS distributor_name
FROM shipments s JOIN distributors d ON d.id = s.distributor_id
WHERE s.brand_id = %(brand_id)s
  AND (%(only_distributor)s::uuid IS NULL OR s.distributor_id = %(only_distributor)s)
ORDER BY s.shipped_at DESC LIMIT %(limit)s;

-- audit_page --
-- The audit viewer: newest first, keyset by id, filtered by action prefix, object type, actor and days;
-- the actor is named (a console user's email, an API token's name) where it is one of the brand's own.
SELECT a.id, a.at, a.actor, a.action, a.object_type, a.object_id, a.before, a.after,
       coalesce(u.email, t.name) AS actor_name
FROM audit_log a
LEFT JOIN console_users u ON a.actor = 'user:' || u.id::text AND u.brand_id = a.brand_id
LEFT JOIN api_tokens t ON a.actor = 'token:' || t.id::text AND t.brand_id = a.brand_id
WHERE a.brand_id = %(brand_id)s
  AND (%(before_id)s::bigint IS NULL OR a.id < %(before_id)s)
  AND (%(action)s::text IS NULL OR starts_with(a.action, %(action)s))
  AND (%(object_type)s::text IS NULL OR a.object_type = %(object_type)s)
  AND (%(actor)s::text IS NULL OR u.email = %(actor)s OR t.name = %(actor)s OR a.actor = %(actor)s)
  AND (%(since)s::timestamptz IS NULL OR a.at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR a.at < %(until)s)
ORDER BY a.id DESC LIMIT %(limit)s;

-- audit_object_types --
SELECT DISTINCT object_type FROM audit_log WHERE brand_id = %(brand_id)s ORDER BY 1;

-- scan_regions --
-- The dashboard's ranked list: the last 7 days' scans by the region they happened in, with clone suspects.
SELECT coalesce(region, 'unknown') AS region, count(*)::bigint AS scans,
       count(*) FILTER (WHERE verdict = 'suspect_clone')::bigint AS clones
FROM scans
WHERE brand_id = %(brand_id)s AND scanned_at >= %(now)s - interval '7 days' AND scanned_at <= %(now)s
GROUP BY 1 ORDER BY scans DESC, region LIMIT 10;

-- recent_campaigns --
-- The campaigns page: the brand's newest campaigns first, their schedule on the campaign's own clock.
SELECT id, name, kind, status, starts_at AT TIME ZONE time_zone AS starts_local,
       ends_at AT TIME ZONE time_zone AS ends_local, spent_cents, budget_cents, created_at
FROM campaigns WHERE brand_id = %(brand_id)s
ORDER BY created_at DESC, id LIMIT %(limit)s;

-- brand_products --
-- The products page and the campaign editor's product list, by name.
SELECT id, name, gtin, sku FROM products WHERE brand_id = %(brand_id)s
ORDER BY name, id LIMIT %(limit)s;

-- timeline_names --
-- A member's page: the names behind the ids its timeline holds, the brand's own only (campaigns, their
-- prizes, products, batches by their lot, coupon templates, the tier ladder), and who acted: a console
-- user's email, an API token's name.
SELECT 'campaign' AS kind, id::text AS ref, name FROM campaigns
WHERE brand_id = %(brand_id)s AND id = ANY(%(campaigns)s::uuid[])
UNION ALL
SELECT 'prize', p.id::text, p.name FROM prizes p JOIN campaigns c ON c.id = p.campaign_id
WHERE c.brand_id = %(brand_id)s AND p.id = ANY(%(prizes)s::uuid[])
UNION ALL
SELECT 'product', id::text, name FROM products WHERE brand_id = %(brand_id)s AND id = ANY(%(products)s::uuid[])
UNION ALL
SELECT 'batch', id::text, lot FROM batches
WHERE brand_id = %(brand_id)s AND id = ANY(%(batches)s::uuid[]) AND lot IS NOT NULL AND lot <> ''
UNION ALL
SELECT 'template', id::text, name FROM coupon_templates
WHERE brand_id = %(brand_id)s AND id = ANY(%(templates)s::uuid[])
UNION ALL
SELECT 'tier', rank::text, name FROM member_tiers WHERE brand_id = %(brand_id)s
UNION ALL
SELECT 'actor', 'user:' || id::text, email FROM console_users
WHERE brand_id = %(brand_id)s AND id = ANY(%(users)s::uuid[])
UNION ALL
SELECT 'actor', 'token:' || id::text, name FROM api_tokens
WHERE brand_id = %(brand_id)s AND id = ANY(%(tokens)s::uuid[]);
