-- diversion_events --
-- Scans of shipped items outside their distributor's territory, newest first, keyset-paged by
-- (scanned_at, id); each with the item's case and pallet (the chain a recall or an audit follows).
-- `only_distributor` scopes a distributor's token to its own events.
SELECT s.id AS scan_id, s.scanned_at, s.distributor_id, d.name AS distributor_name, d.regions AS territory,
       s.region, s.product_id, p.name AS product_name, s.batch_id, b.lot, s.code_index - b.start_index AS position,
       c.sscc AS case_sscc, pl.sscc AS pallet_sscc
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
SELECT 'distributor' AS dimension, distributor_id::text AS key, count(*)::bigint AS events
FROM events GROUP BY distributor_id
UNION ALL
SELECT 'region', region, count(*) FROM events GROUP BY region
UNION ALL
SELECT 'week', week::text, count(*) FROM events GROUP BY week
ORDER BY dimension, events DESC, key;
