-- try_lock_refresh --
-- One refresher at a time across workers; the others skip this round.
SELECT pg_try_advisory_xact_lock(271828182) AS locked;

-- lock_refresh --
-- An operator's or a test's refresh waits its turn instead.
SELECT pg_advisory_xact_lock(271828182) IS NOT NULL AS locked;

-- progress --
SELECT refreshed_until, full_refresh_on FROM member_stats_progress;

-- save_progress --
INSERT INTO member_stats_progress (singleton, refreshed_until, full_refresh_on)
VALUES (true, %(refreshed_until)s, %(full_refresh_on)s)
ON CONFLICT (singleton) DO UPDATE
SET refreshed_until = excluded.refreshed_until, full_refresh_on = excluded.full_refresh_on;

-- oldest_transaction --
-- When the oldest transaction still open on this database began (the refresh's own included): what
-- such a transaction writes carries times before its commit, so the next refresh looks back to it.
SELECT min(xact_start) AS started FROM pg_stat_activity WHERE datname = current_database();

-- outgrown_statistics --
-- Tables the refresh reads that grew past twice their size when last analyzed (and by at least
-- `min_rows`): a fresh deployment in its first promotion, faster than autovacuum's analyses. On such stale
-- estimates ("members: 3 rows") the planner chose nested loops over brand-wide index scans, which made
-- one refresh statement run for minutes. Partitions of the scan log included: autovacuum analyzes
-- those, never their parent, whose statistics come from them.
SELECT c.oid::regclass::text AS name
FROM pg_stat_user_tables t
JOIN pg_class c ON c.oid = t.relid
WHERE (t.relname = ANY(%(tables)s::text[]) OR c.relispartition AND t.relname LIKE 'scans\_%%')
  AND t.n_mod_since_analyze >= greatest(c.reltuples, %(min_rows)s)
ORDER BY 1;

-- touched_members --
-- Members whose scans or points moved since `since` (the surviving member of a merge stands for all),
-- as the text of one uuid[] (see stats.refresh).
SELECT coalesce(array_agg(DISTINCT coalesce(m.merged_into, m.id))::text, '{}') AS ids
FROM (
    SELECT member_id FROM scans WHERE scanned_at >= %(since)s AND member_id IS NOT NULL
    UNION
    SELECT member_id FROM points_ledger WHERE created_at >= %(since)s
    UNION
    SELECT id FROM members WHERE created_at >= %(since)s OR updated_at >= %(since)s
) touched
JOIN members m ON m.id = touched.member_id;

-- refresh_stats --
-- Recompute the statistics of `member_ids` (every member when null) from the scan log and the ledger,
-- counting the anonymous members merged into each one. Idempotent: a member refreshed twice is unchanged.
-- A member whose lifecycle stage moves gets a member_lifecycle_changes row (read by the member events);
-- `previous` sees the stages before the upsert, as every part of one statement sees the same snapshot.
WITH targets AS (
    SELECT m.id AS member_id, m.brand_id, m.created_at,
           coalesce(ms.new_days, 30) AS new_days, coalesce(ms.active_days, 90) AS active_days,
           coalesce(ms.churn_days, 365) AS churn_days, coalesce(ms.tier_window_days, 365) AS tier_window_days
    FROM members m LEFT JOIN member_settings ms ON ms.brand_id = m.brand_id
    WHERE m.merged_into IS NULL
      AND (%(member_ids)s::uuid[] IS NULL OR m.id = ANY(%(member_ids)s::uuid[]))
), family AS (
    -- Each target with the members merged into it, and what counting their scans needs: scans join
    -- this on the member alone. (Joined to `targets` on the brand, a stale row estimate once made the
    -- planner pair every scan of a brand with every target: minutes for a refresh of 80,000 members.)
    SELECT t.member_id, t.brand_id, t.tier_window_days, t.member_id AS source_id
    FROM targets t
    UNION ALL
    SELECT t.member_id, t.brand_id, t.tier_window_days, f.id
    FROM targets t
    JOIN members f ON f.merged_into = t.member_id
), scan_stats AS (
    SELECT fa.member_id, count(*) AS scans,
           count(*) FILTER (WHERE s.verdict = 'genuine_first') AS first_scans,
           count(*) FILTER (WHERE s.scanned_at >= %(now)s - make_interval(days => fa.tier_window_days))
               AS scans_in_window,
           count(DISTINCT s.product_id) AS products,
           array_agg(DISTINCT s.product_id) AS product_ids,
           min(s.scanned_at) AS first_scan_at, max(s.scanned_at) AS last_scan_at,
           (array_agg(s.region ORDER BY s.scanned_at DESC) FILTER (WHERE s.region IS NOT NULL))[1]
               AS last_region
    FROM family fa
    JOIN scans s ON s.member_id = fa.source_id AND s.brand_id = fa.brand_id
    WHERE s.verdict IN ('genuine_first', 'genuine_repeat')
    GROUP BY fa.member_id
), earned AS (
    SELECT fa.member_id, coalesce(sum(e.amount) FILTER (WHERE e.kind = 'earn'), 0) AS points_earned,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'redeem'), 0) AS points_spent
    FROM family fa JOIN points_ledger e ON e.member_id = fa.source_id AND e.kind IN ('earn', 'redeem')
    GROUP BY fa.member_id
), balances AS (
    SELECT l.member_id, sum(l.remaining) AS points_balance
    FROM targets t JOIN points_lots l ON l.member_id = t.member_id
    WHERE l.remaining > 0 AND l.expires_at > %(now)s
    GROUP BY l.member_id
), computed AS (
    SELECT t.brand_id, t.member_id, coalesce(ss.scans, 0) AS scans,
           coalesce(ss.scans_in_window, 0) AS scans_in_window, coalesce(ss.first_scans, 0) AS first_scans,
           coalesce(ss.products, 0) AS products, coalesce(ss.product_ids, '{}') AS product_ids,
           ss.first_scan_at, ss.last_scan_at, ss.last_region,
           coalesce(e.points_earned, 0) AS points_earned, coalesce(e.points_spent, 0) AS points_spent,
           coalesce(b.points_balance, 0) AS points_balance,
           CASE
               WHEN coalesce(ss.first_scan_at, t.created_at) >= %(now)s - make_interval(days => t.new_days)
                   THEN 'new'
               WHEN coalesce(ss.last_scan_at, t.created_at) >= %(now)s - make_interval(days => t.active_days)
                   THEN 'active'
               WHEN coalesce(ss.last_scan_at, t.created_at) >= %(now)s - make_interval(days => t.churn_days)
                   THEN 'dormant'
               ELSE 'churned'
           END AS lifecycle
    FROM targets t
    LEFT JOIN scan_stats ss ON ss.member_id = t.member_id
    LEFT JOIN earned e ON e.member_id = t.member_id
    LEFT JOIN balances b ON b.member_id = t.member_id
), previous AS (
    SELECT ms.member_id, ms.lifecycle FROM member_stats ms JOIN targets t ON t.member_id = ms.member_id
), upserted AS (
    INSERT INTO member_stats AS ms (brand_id, member_id, scans, scans_in_window, first_scans, products,
                                    product_ids, first_scan_at, last_scan_at, last_region, points_earned,
                                    points_spent, points_balance, lifecycle, lifecycle_since, refreshed_at)
    SELECT brand_id, member_id, scans, scans_in_window, first_scans, products, product_ids, first_scan_at,
           last_scan_at, last_region, points_earned, points_spent, points_balance, lifecycle, %(now)s, %(now)s
    FROM computed
    ON CONFLICT (member_id) DO UPDATE SET
        scans = excluded.scans, scans_in_window = excluded.scans_in_window,
        first_scans = excluded.first_scans, products = excluded.products, product_ids = excluded.product_ids,
        first_scan_at = excluded.first_scan_at, last_scan_at = excluded.last_scan_at,
        last_region = excluded.last_region, points_earned = excluded.points_earned,
        points_spent = excluded.points_spent, points_balance = excluded.points_balance, lifecycle = excluded.lifecycle,
        lifecycle_since = CASE WHEN ms.lifecycle = excluded.lifecycle THEN ms.lifecycle_since
                               ELSE excluded.lifecycle_since END,
        refreshed_at = excluded.refreshed_at
    RETURNING ms.brand_id, ms.member_id, ms.lifecycle
), lifecycle_changes AS (
    INSERT INTO member_lifecycle_changes (brand_id, member_id, from_lifecycle, to_lifecycle, changed_at)
    SELECT u.brand_id, u.member_id, p.lifecycle, u.lifecycle, %(now)s
    FROM upserted u JOIN previous p ON p.member_id = u.member_id
    WHERE p.lifecycle <> u.lifecycle
)
SELECT count(*) AS members FROM upserted;

-- refresh_tiers --
-- Upgrades at once; a downgrade waits for the end of the calendar year in which the tier was reached.
WITH qualified AS (
    SELECT s.member_id, s.brand_id, s.tier_rank AS from_rank, s.tier_since,
           coalesce(max(t.rank), 0) AS to_rank
    FROM member_stats s
    LEFT JOIN member_tiers t ON t.brand_id = s.brand_id
        AND s.points_earned >= t.min_points_earned AND s.scans_in_window >= t.min_scans
    WHERE %(member_ids)s::uuid[] IS NULL OR s.member_id = ANY(%(member_ids)s::uuid[])
    GROUP BY s.member_id, s.brand_id, s.tier_rank, s.tier_since
), moving AS (
    SELECT * FROM qualified
    WHERE to_rank > from_rank
       OR (to_rank < from_rank
           AND %(now)s >= date_trunc('year', coalesce(tier_since, %(now)s)) + interval '1 year')
), updated AS (
    UPDATE member_stats s SET tier_rank = m.to_rank, tier_since = %(now)s
    FROM moving m WHERE s.member_id = m.member_id
)
INSERT INTO member_tier_changes (brand_id, member_id, from_rank, to_rank, changed_at)
SELECT brand_id, member_id, from_rank, to_rank, %(now)s FROM moving;

-- brands_with_rule_tags --
SELECT DISTINCT brand_id AS id FROM tags WHERE kind = 'rule';
