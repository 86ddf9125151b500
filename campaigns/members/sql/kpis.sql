-- kpis --
-- Every figure for one brand over [from, to); the formulas are documented in campaigns/members/kpis.py.
-- With `in_segment`, only the members listed in the temporary table segment_scope count.
WITH live AS (
    SELECT m.id, m.created_at, m.enrolled_at FROM members m
    WHERE m.brand_id = %(brand_id)s AND m.merged_into IS NULL AND m.erased_at IS NULL
      AND (NOT %(in_segment)s OR m.id IN (SELECT id FROM segment_scope))
), period_scans AS (
    SELECT coalesce(m.merged_into, s.member_id) AS member_id, s.verdict
    FROM scans s JOIN members m ON m.id = s.member_id
    WHERE s.brand_id = %(brand_id)s AND s.scanned_at >= %(from)s AND s.scanned_at < %(to)s
      AND s.verdict IN ('genuine_first', 'genuine_repeat')
      AND (NOT %(in_segment)s OR coalesce(m.merged_into, s.member_id) IN (SELECT id FROM segment_scope))
), scanners AS (
    SELECT member_id, count(*) AS scans, count(*) FILTER (WHERE verdict = 'genuine_first') AS firsts
    FROM period_scans GROUP BY member_id
), mau AS (
    SELECT count(DISTINCT coalesce(m.merged_into, s.member_id)) AS members
    FROM scans s JOIN members m ON m.id = s.member_id
    WHERE s.brand_id = %(brand_id)s AND s.scanned_at >= %(to)s - interval '30 days' AND s.scanned_at < %(to)s
      AND s.verdict IN ('genuine_first', 'genuine_repeat')
      AND (NOT %(in_segment)s OR coalesce(m.merged_into, s.member_id) IN (SELECT id FROM segment_scope))
), before_period AS (
    SELECT coalesce(m.merged_into, s.member_id) AS member_id, max(s.scanned_at) AS last_scan_at
    FROM scans s JOIN members m ON m.id = s.member_id
    WHERE s.brand_id = %(brand_id)s AND s.scanned_at < %(from)s
      AND s.verdict IN ('genuine_first', 'genuine_repeat')
      AND (NOT %(in_segment)s OR coalesce(m.merged_into, s.member_id) IN (SELECT id FROM segment_scope))
    GROUP BY 1
), dormant_at_start AS (
    SELECT member_id FROM before_period
    WHERE last_scan_at < %(from)s - make_interval(days => %(active_days)s)
), coupons_issued AS (
    SELECT count(*) AS issued, count(*) FILTER (WHERE uses > 0) AS used FROM coupons
    WHERE brand_id = %(brand_id)s AND issued_at >= %(from)s AND issued_at < %(to)s
      AND (NOT %(in_segment)s OR member_id IN (SELECT id FROM segment_scope))
)
SELECT
    (SELECT count(*) FROM live WHERE created_at < %(to)s) AS members,
    (SELECT count(*) FROM live WHERE created_at >= %(from)s AND created_at < %(to)s) AS new_members,
    (SELECT count(*) FROM live WHERE enrolled_at IS NOT NULL AND enrolled_at < %(to)s) AS enrolled_members,
    (SELECT members FROM mau) AS monthly_active_members,
    (SELECT count(*) FROM scanners) AS scanning_members,
    (SELECT coalesce(sum(scans), 0)::bigint FROM scanners) AS scans,
    (SELECT count(*) FROM scanners WHERE firsts >= 2) AS repeat_members,
    (SELECT count(*) FROM scanners WHERE firsts >= 1) AS purchasing_members,
    (SELECT issued FROM coupons_issued) AS coupons_issued,
    (SELECT used FROM coupons_issued) AS coupons_redeemed,
    (SELECT count(*) FROM dormant_at_start) AS dormant_at_start,
    (SELECT count(*) FROM dormant_at_start d JOIN scanners s USING (member_id)) AS reactivated,
    (SELECT count(*) FROM scanners s JOIN live l ON l.id = s.member_id
     WHERE l.enrolled_at IS NOT NULL AND l.enrolled_at < %(to)s) AS enrolled_scanners,
    (SELECT coalesce(sum(l.remaining), 0) FROM points_lots l
     WHERE l.brand_id = %(brand_id)s AND l.remaining > 0 AND l.expires_at > %(now)s
       AND (NOT %(in_segment)s OR l.member_id IN (SELECT id FROM segment_scope)))::bigint AS points_liability;

-- create_segment_scope --
-- The members of a segment, for the KPIs of this transaction only (filled by segments.scope_query).
CREATE TEMPORARY TABLE IF NOT EXISTS segment_scope (id uuid PRIMARY KEY) ON COMMIT DROP;

-- active_days --
SELECT coalesce((SELECT active_days FROM member_settings WHERE brand_id = %(brand_id)s), 90) AS days;
