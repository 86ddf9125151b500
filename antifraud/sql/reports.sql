-- diversion_events --
-- Scans of shipped items outside their distributor's territory, newest first, keyset-paged by
-- (scanned_at, id); each with the item's case and pallet (the chain a recall or an audit follows).
-- `only_distributor` scopes a distributor's token to its own events.
SELECT s.id AS scan_id, s.scanned_at, s.distributor_id, d.name AS distributor_name,
       -- The territory the scan was judged against: the distributor's when it was scanned.
       coalesce((SELECT t.regions FROM distributor_territories t
                 WHERE t.distributor_id = s.distributor_id AND t.valid_from <= s.scanned_at
                 ORDER BY t.valid_from DESC LIMIT 1), d.regions) AS territory,
       s.region, s.product_id, p.name AS product_name, s.batch_id, b.lot, s.code_index - b.start_index AS position,
       c.sscc AS case_sscc, pl.sscc AS pallet_sscc, s.city
FROM scans s
JOIN distributors d ON d.id = s.distributor_id
JOIN batches b ON b.id = s.batch_id
JOIN products p ON p.id = s.product_id
LEFT JOIN LATERAL (
    SELECT a.sscc, a.parent_id FROM aggregation_items i JOIN aggregations a ON a.id = i.aggregation_id
    WHERE i.batch_id = s.batch_id AND i.start_index <= s.code_index - b.start_index
      AND s.code_index - b.start_index < i.stop_index
    LIMIT 1
) c ON true
LEFT JOIN aggregations pl ON pl.id = c.parent_id
WHERE s.brand_id = %(brand_id)s AND s.diverted
  AND s.scanned_at >= %(since)s AND s.scanned_at < %(until)s
  AND (%(only_distributor)s::uuid IS NULL OR s.distributor_id = %(only_distributor)s)
  AND (%(distributor_id)s::uuid IS NULL OR s.distributor_id = %(distributor_id)s)
  AND (%(region)s::text IS NULL OR s.region = %(region)s)
  AND (%(before_at)s::timestamptz IS NULL OR (s.scanned_at, s.id) < (%(before_at)s, %(before_id)s::uuid))
ORDER BY s.scanned_at DESC, s.id DESC
LIMIT %(limit)s;

-- diversion_totals --
-- The same events counted three ways, for a console chart: by distributor, by region, by ISO week.
WITH events AS (
    SELECT s.distributor_id, s.region, date_trunc('week', s.scanned_at AT TIME ZONE %(time_zone)s)::date AS week
    FROM scans s
    WHERE s.brand_id = %(brand_id)s AND s.diverted
      AND s.scanned_at >= %(since)s AND s.scanned_at < %(until)s
      AND (%(only_distributor)s::uuid IS NULL OR s.distributor_id = %(only_distributor)s)
      AND (%(distributor_id)s::uuid IS NULL OR s.distributor_id = %(distributor_id)s)
      AND (%(region)s::text IS NULL OR s.region = %(region)s)
)
SELECT * FROM (
    SELECT 'distributor' AS dimension, distributor_id::text AS key, count(*)::bigint AS events
    FROM events GROUP BY distributor_id
    UNION ALL
    SELECT 'region', region, count(*) FROM events GROUP BY region
    UNION ALL
    SELECT 'week', week::text, count(*) FROM events GROUP BY week
) totals
-- Weeks in calendar order (a chart's x axis); the rest largest first.
ORDER BY dimension, CASE WHEN dimension = 'week' THEN key END, events DESC, key;

-- scans_by --
-- Scans of the period counted by verdict, grouped by one dimension (`by`); counterfeit scans, which
-- name no product, only count where the group is a region or a week. `only_distributor` scopes a
-- distributor's token to its own items. A distributor or product group also carries its name (looked
-- up for the `limit` groups kept only).
WITH genuine AS (
    SELECT CASE %(by)s
               WHEN 'region' THEN coalesce(s.region, 'unknown')
               WHEN 'product' THEN s.product_id::text
               WHEN 'batch' THEN s.batch_id::text
               WHEN 'distributor' THEN coalesce(s.distributor_id::text, 'none')
               ELSE date_trunc('week', s.scanned_at AT TIME ZONE %(time_zone)s)::date::text
           END AS key,
           s.verdict, s.diverted
    FROM scans s
    WHERE s.brand_id = %(brand_id)s AND s.scanned_at >= %(since)s AND s.scanned_at < %(until)s
      AND (%(only_distributor)s::uuid IS NULL OR s.distributor_id = %(only_distributor)s)
), fakes AS (
    SELECT CASE %(by)s
               WHEN 'region' THEN coalesce(c.region, 'unknown')
               ELSE date_trunc('week', c.scanned_at AT TIME ZONE %(time_zone)s)::date::text
           END AS key
    FROM counterfeit_scans c
    WHERE %(by)s IN ('region', 'week') AND %(only_distributor)s::uuid IS NULL
      AND c.claimed_brand_id = %(brand_id)s AND c.scanned_at >= %(since)s AND c.scanned_at < %(until)s
), counted AS (
    SELECT key, count(*) AS scans,
           count(*) FILTER (WHERE verdict = 'genuine_first') AS first_scans,
           count(*) FILTER (WHERE verdict = 'genuine_repeat') AS repeat_scans,
           count(*) FILTER (WHERE verdict = 'suspect_clone') AS suspect_clone,
           count(*) FILTER (WHERE verdict = 'not_activated') AS not_activated,
           count(*) FILTER (WHERE diverted) AS diverted,
           0 AS counterfeit
    FROM genuine GROUP BY key
    UNION ALL
    SELECT key, count(*), 0, 0, 0, 0, 0, count(*) FROM fakes GROUP BY key
), kept AS (
    SELECT key, sum(scans)::bigint AS scans, sum(first_scans)::bigint AS first_scans,
           sum(repeat_scans)::bigint AS repeat_scans, sum(suspect_clone)::bigint AS suspect_clone,
           sum(not_activated)::bigint AS not_activated, sum(diverted)::bigint AS diverted,
           sum(counterfeit)::bigint AS counterfeit
    FROM counted GROUP BY key
    -- Weeks in calendar order (a chart's x axis); the other groups largest first, the `limit` largest.
    ORDER BY CASE WHEN %(by)s = 'week' THEN key END, scans DESC, key
    LIMIT %(limit)s
)
SELECT k.key, coalesce(d.name, p.name) AS name, k.scans, k.first_scans, k.repeat_scans, k.suspect_clone,
       k.not_activated, k.diverted, k.counterfeit
FROM kept k
-- CASE, not a cast in the join condition: a region or week key is never read as a uuid.
LEFT JOIN distributors d
    ON d.id = CASE WHEN %(by)s = 'distributor' AND k.key <> 'none' THEN k.key::uuid END
LEFT JOIN products p ON p.id = CASE WHEN %(by)s = 'product' THEN k.key::uuid END
ORDER BY CASE WHEN %(by)s = 'week' THEN k.key END, k.scans DESC, k.key;

-- batch_scan_rates --
-- Per batch: codes activated (shipped; all of an on_issue batch), codes scanned at least once (their
-- first-scan claims), and the ratio; newest batches first, keyset by batch id within the brand.
SELECT b.id AS batch_id, p.name AS product_name, b.lot, b.quantity, b.activation,
       CASE WHEN b.activation = 'on_issue' THEN b.quantity
            ELSE coalesce((SELECT sum(a.stop_index - a.start_index) FROM activations a WHERE a.batch_id = b.id), 0)
       END::bigint AS activated,
       (SELECT count(*) FROM code_claims cc WHERE cc.batch_id = b.id)::bigint AS scanned
FROM batches b JOIN products p ON p.id = b.product_id
WHERE b.brand_id = %(brand_id)s AND (%(after)s::uuid IS NULL OR b.id > %(after)s)
ORDER BY b.id
LIMIT %(limit)s;
