-- segment_members --
-- The members a segment selects: this, AND each condition below whose parameter the filter sets
-- (segments.py puts together only those; a condition that is not there costs nothing to plan around).
SELECT m.id, m.phone_last4, m.enrolled_at, m.created_at, coalesce(m.region, s.last_region) AS region,
       coalesce(s.tier_rank, 0) AS tier_rank, coalesce(s.lifecycle, 'new') AS lifecycle,
       coalesce(s.scans, 0) AS scans, s.last_scan_at, coalesce(s.points_balance, 0) AS points_balance,
       coalesce(s.points_earned, 0) AS points_earned
FROM members m
LEFT JOIN member_stats s ON s.member_id = m.id
WHERE m.brand_id = %(brand_id)s AND m.merged_into IS NULL AND m.erased_at IS NULL

-- where_after --
m.id > %(after)s::uuid

-- where_member_ids --
m.id = ANY(%(member_ids)s::uuid[])

-- where_tiers --
coalesce(s.tier_rank, 0) = ANY(%(tiers)s::smallint[])

-- where_lifecycle --
coalesce(s.lifecycle, 'new') = ANY(%(lifecycle)s::text[])

-- where_regions --
(coalesce(m.region, s.last_region) = ANY(%(regions)s::text[])
 OR split_part(coalesce(m.region, s.last_region), '-', 1) = ANY(%(regions)s::text[]))

-- where_enrolled --
(m.enrolled_at IS NOT NULL) = %(enrolled)s::boolean

-- where_consent_marketing --
(m.consent_marketing_at IS NOT NULL) = %(consent_marketing)s::boolean

-- where_scans_min --
coalesce(s.scans, 0) >= %(scans_min)s::int

-- where_scans_max --
coalesce(s.scans, 0) <= %(scans_max)s::int

-- where_scanned_since --
s.last_scan_at >= %(scanned_since)s::timestamptz

-- where_idle_since --
coalesce(s.last_scan_at, m.created_at) < %(idle_since)s::timestamptz

-- where_points_earned_min --
coalesce(s.points_earned, 0) >= %(points_earned_min)s::bigint

-- where_points_spent_min --
coalesce(s.points_spent, 0) >= %(points_spent_min)s::bigint

-- where_points_balance_min --
coalesce(s.points_balance, 0) >= %(points_balance_min)s::bigint

-- where_products_any --
s.product_ids && %(products_any)s::uuid[]

-- where_attributes --
m.attributes @> %(attributes)s::jsonb

-- where_tags_all --
m.id IN (SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_all)s::bigint[])
         GROUP BY member_id HAVING count(*) = cardinality(%(tags_all)s::bigint[]))

-- where_tags_any --
m.id IN (SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_any)s::bigint[]))

-- where_tags_none --
m.id NOT IN (SELECT member_id FROM member_tags WHERE tag_id = ANY(%(tags_none)s::bigint[]))

-- stats_tiers --
-- The same conditions on member_stats' own columns, for values no member without statistics can have
-- (tier 0, 'new', 0 scans or points are what a member without a row counts as). These are strict, so
-- PostgreSQL joins only members that have statistics and filters member_stats before hashing it,
-- instead of hashing every member's statistics to test the coalesce after the join.
s.tier_rank = ANY(%(tiers)s::smallint[])

-- stats_lifecycle --
s.lifecycle = ANY(%(lifecycle)s::text[])

-- stats_scans_min --
s.scans >= %(scans_min)s::int

-- stats_points_earned_min --
s.points_earned >= %(points_earned_min)s::bigint

-- stats_points_spent_min --
s.points_spent >= %(points_spent_min)s::bigint

-- stats_points_balance_min --
s.points_balance >= %(points_balance_min)s::bigint

-- large_sort_memory --
-- A segment over a million members hashes large sets (tags, statistics): give this transaction room,
-- so that the plans stay hash joins in memory instead of re-scanning a list per member.
SELECT set_config('work_mem', '64MB', true);

-- tag_ids --
SELECT id, name FROM tags WHERE brand_id = %(brand_id)s AND name = ANY(%(names)s);

-- count_segments --
SELECT count(*) FROM segments WHERE brand_id = %(brand_id)s;

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
-- By name (unique in a brand), keyset by name: `after` is the last name of the previous page, which
-- still places the page when that segment was deleted or renamed in between.
SELECT id, name, filter, created_by, created_at, updated_at FROM segments
WHERE brand_id = %(brand_id)s AND (%(after)s::text IS NULL OR name > %(after)s::text)
ORDER BY name LIMIT %(limit)s;

-- campaigns_using_segment --
SELECT name FROM campaigns
WHERE brand_id = %(brand_id)s AND status IN ('draft', 'scheduled', 'active', 'paused')
  AND eligibility -> 'segment_ids' @> to_jsonb(%(segment_id)s::text)
ORDER BY name;

-- delete_segment --
DELETE FROM segments WHERE id = %(segment_id)s AND brand_id = %(brand_id)s RETURNING id;

-- live_segments --
-- Segments that a campaign which may still reward scans names in its eligibility.
SELECT s.id, s.brand_id, s.filter, s.updated_at, s.members_computed_at FROM segments s
WHERE EXISTS (SELECT 1 FROM campaigns c
              WHERE c.brand_id = s.brand_id AND c.status IN ('scheduled', 'active', 'paused')
                AND c.eligibility -> 'segment_ids' @> to_jsonb(s.id::text));

-- clear_memberships --
DELETE FROM segment_memberships
WHERE segment_id = %(segment_id)s AND (%(member_ids)s::uuid[] IS NULL OR member_id = ANY(%(member_ids)s::uuid[]));

-- memberships_computed --
UPDATE segments SET members_computed_at = %(now)s WHERE id = %(segment_id)s;
