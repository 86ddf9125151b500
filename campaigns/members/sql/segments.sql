-- segment_members --
-- The members a segment filter selects; every condition is skipped when its parameter is null.
-- Callers count these rows or page through them by id (they append ORDER BY and LIMIT).
SELECT m.id, m.phone_last4, m.enrolled_at, m.created_at, coalesce(m.region, s.last_region) AS region,
       coalesce(s.tier_rank, 0) AS tier_rank, coalesce(s.lifecycle, 'new') AS lifecycle,
       coalesce(s.scans, 0) AS scans, s.last_scan_at, coalesce(s.points_balance, 0) AS points_balance,
       coalesce(s.points_earned, 0) AS points_earned
FROM members m
LEFT JOIN member_stats s ON s.member_id = m.id
WHERE m.brand_id = %(brand_id)s AND m.merged_into IS NULL AND m.erased_at IS NULL
  AND (%(after)s::uuid IS NULL OR m.id > %(after)s::uuid)
  AND (%(tiers)s::smallint[] IS NULL OR coalesce(s.tier_rank, 0) = ANY(%(tiers)s::smallint[]))
  AND (%(lifecycle)s::text[] IS NULL OR coalesce(s.lifecycle, 'new') = ANY(%(lifecycle)s::text[]))
  AND (%(regions)s::text[] IS NULL
       OR coalesce(m.region, s.last_region) = ANY(%(regions)s::text[])
       OR split_part(coalesce(m.region, s.last_region), '-', 1) = ANY(%(regions)s::text[]))
  AND (%(enrolled)s::boolean IS NULL OR (m.enrolled_at IS NOT NULL) = %(enrolled)s::boolean)
  AND (%(consent_marketing)s::boolean IS NULL
       OR (m.consent_marketing_at IS NOT NULL) = %(consent_marketing)s::boolean)
  AND (%(scans_min)s::int IS NULL OR coalesce(s.scans, 0) >= %(scans_min)s::int)
  AND (%(scans_max)s::int IS NULL OR coalesce(s.scans, 0) <= %(scans_max)s::int)
  AND (%(scanned_since)s::timestamptz IS NULL OR s.last_scan_at >= %(scanned_since)s::timestamptz)
  AND (%(idle_since)s::timestamptz IS NULL
       OR coalesce(s.last_scan_at, m.created_at) < %(idle_since)s::timestamptz)
  AND (%(points_earned_min)s::bigint IS NULL OR coalesce(s.points_earned, 0) >= %(points_earned_min)s::bigint)
  AND (%(points_balance_min)s::bigint IS NULL
       OR coalesce(s.points_balance, 0) >= %(points_balance_min)s::bigint)
  AND (%(products_any)s::uuid[] IS NULL OR s.product_ids && %(products_any)s::uuid[])
  AND (%(attributes)s::jsonb IS NULL OR m.attributes @> %(attributes)s::jsonb)
  AND (%(tags_all)s::bigint[] IS NULL OR m.id IN (
          SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_all)s::bigint[])
          GROUP BY member_id HAVING count(*) = cardinality(%(tags_all)s::bigint[])))
  AND (%(tags_any)s::bigint[] IS NULL
       OR m.id IN (SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_any)s::bigint[])))
  AND (%(tags_none)s::bigint[] IS NULL
       OR m.id NOT IN (SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_none)s::bigint[])))

-- tag_ids --
SELECT id, name FROM tags WHERE brand_id = %(brand_id)s AND name = ANY(%(names)s);

-- create_segment --
INSERT INTO segments (brand_id, name, filter, created_by)
VALUES (%(brand_id)s, %(name)s, %(filter)s, %(actor)s)
ON CONFLICT (brand_id, name) DO NOTHING
RETURNING id, name, filter, created_by, created_at, updated_at;

-- update_segment --
UPDATE segments SET name = %(name)s, filter = %(filter)s, updated_at = now()
WHERE id = %(segment_id)s AND brand_id = %(brand_id)s
RETURNING id, name, filter, created_by, created_at, updated_at;

-- get_segment --
SELECT id, name, filter, created_by, created_at, updated_at FROM segments
WHERE id = %(segment_id)s AND brand_id = %(brand_id)s;

-- list_segments --
SELECT id, name, filter, created_by, created_at, updated_at FROM segments
WHERE brand_id = %(brand_id)s ORDER BY name;

-- delete_segment --
DELETE FROM segments WHERE id = %(segment_id)s AND brand_id = %(brand_id)s RETURNING id;
