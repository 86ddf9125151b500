-- get_clone_rules --
SELECT devices, members, regions, max_speed_kmh, burst FROM clone_rules WHERE brand_id = %(brand_id)s;

-- save_clone_rules --
INSERT INTO clone_rules AS r (brand_id, devices, members, regions, max_speed_kmh, burst)
VALUES (%(brand_id)s, %(devices)s, %(members)s, %(regions)s, %(max_speed_kmh)s, %(burst)s)
ON CONFLICT (brand_id) DO UPDATE SET devices = excluded.devices, members = excluded.members,
                                     regions = excluded.regions, max_speed_kmh = excluded.max_speed_kmh,
                                     burst = excluded.burst, updated_at = now()
RETURNING devices, members, regions, max_speed_kmh, burst;

-- flagged_page --
-- The review list, oldest flag first (keyset by id), each code with its product, lot, batch position,
-- scans so far, and its case and pallet (a clone usually means the whole case was copied).
SELECT f.id, f.key_id, f.code_index, f.batch_id, b.lot, f.code_index - b.start_index AS position,
       p.name AS product_name, f.score, f.reasons, f.suspect_scans, f.first_flagged_at, f.last_flagged_at,
       f.status, f.reviewed_by, f.reviewed_at,
       coalesce(cc.scan_count, 0) AS scans, c.sscc AS case_sscc, pl.sscc AS pallet_sscc
FROM flagged_codes f
JOIN batches b ON b.id = f.batch_id
JOIN products p ON p.id = b.product_id
LEFT JOIN code_claims cc ON cc.brand_id = f.brand_id AND cc.key_id = f.key_id AND cc.code_index = f.code_index
LEFT JOIN LATERAL (
    SELECT a.sscc, a.parent_id FROM aggregation_items i JOIN aggregations a ON a.id = i.aggregation_id
    WHERE i.batch_id = f.batch_id AND i.start_index <= f.code_index - b.start_index
      AND f.code_index - b.start_index < i.stop_index
    LIMIT 1
) c ON true
LEFT JOIN aggregations pl ON pl.id = c.parent_id
WHERE f.brand_id = %(brand_id)s AND f.status = %(status)s AND (%(after)s::bigint IS NULL OR f.id > %(after)s)
ORDER BY f.id
LIMIT %(limit)s;

-- review_flag --
UPDATE flagged_codes SET status = %(status)s, reviewed_by = %(actor)s, reviewed_at = %(now)s
WHERE brand_id = %(brand_id)s AND id = %(flag_id)s
RETURNING id, key_id, code_index, status;

-- flagged_cases --
-- Cases (with their pallet) holding open flagged codes, most flagged first: one copied code usually
-- means a copied case, so the whole case goes up for review.
SELECT c.sscc AS case_sscc, pl.sscc AS pallet_sscc, b.id AS batch_id, b.lot, p.name AS product_name,
       count(*)::bigint AS flagged_codes, max(f.score) AS max_score,
       min(f.first_flagged_at) AS first_flagged_at, max(f.last_flagged_at) AS last_flagged_at
FROM flagged_codes f
JOIN batches b ON b.id = f.batch_id
JOIN products p ON p.id = b.product_id
JOIN aggregation_items i ON i.positions @> (b.seq * 4294967296 + (f.code_index - b.start_index))::bigint
JOIN aggregations c ON c.id = i.aggregation_id
LEFT JOIN aggregations pl ON pl.id = c.parent_id
WHERE f.brand_id = %(brand_id)s AND f.status = 'open'
GROUP BY c.sscc, pl.sscc, b.id, b.lot, p.name
ORDER BY flagged_codes DESC, c.sscc
LIMIT %(limit)s;
