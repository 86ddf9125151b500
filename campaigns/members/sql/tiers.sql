-- list_tiers --
SELECT rank, name, min_points_earned, min_scans, points_multiplier_pct, draw_weight_bonus_pct
FROM member_tiers WHERE brand_id = %(brand_id)s ORDER BY rank;

-- clear_tiers --
DELETE FROM member_tiers WHERE brand_id = %(brand_id)s;

-- insert_tier --
INSERT INTO member_tiers (brand_id, rank, name, min_points_earned, min_scans, points_multiplier_pct,
                          draw_weight_bonus_pct)
VALUES (%(brand_id)s, %(rank)s, %(name)s, %(min_points_earned)s, %(min_scans)s, %(points_multiplier_pct)s,
        %(draw_weight_bonus_pct)s);

-- get_settings --
SELECT coalesce(s.new_days, 30) AS new_days, coalesce(s.active_days, 90) AS active_days,
       coalesce(s.churn_days, 365) AS churn_days,
       coalesce(s.adjustment_approval_points, 1000) AS adjustment_approval_points,
       coalesce(s.tier_window_days, 365) AS tier_window_days, s.erase_inactive_after_days
FROM (SELECT %(brand_id)s::uuid AS brand_id) b
LEFT JOIN member_settings s ON s.brand_id = b.brand_id;

-- put_settings --
INSERT INTO member_settings (brand_id, new_days, active_days, churn_days, adjustment_approval_points,
                             tier_window_days, erase_inactive_after_days, updated_at)
VALUES (%(brand_id)s, %(new_days)s, %(active_days)s, %(churn_days)s, %(adjustment_approval_points)s,
        %(tier_window_days)s, %(erase_inactive_after_days)s, now())
ON CONFLICT (brand_id) DO UPDATE SET
    new_days = excluded.new_days, active_days = excluded.active_days, churn_days = excluded.churn_days,
    adjustment_approval_points = excluded.adjustment_approval_points,
    tier_window_days = excluded.tier_window_days,
    erase_inactive_after_days = excluded.erase_inactive_after_days, updated_at = now();

-- campaigns_naming_other_tiers --
-- Campaigns not yet ended whose rules name a tier outside `names` (eligibility or points multipliers),
-- with the tiers they name that are missing.
SELECT c.name, array_agg(DISTINCT t.tier ORDER BY t.tier) AS tiers
FROM campaigns c
CROSS JOIN LATERAL (
    SELECT jsonb_array_elements_text(coalesce(c.eligibility -> 'member_tiers', '[]')) AS tier
    UNION
    SELECT jsonb_object_keys(coalesce(c.points_reward -> 'tier_multipliers_pct', '{}'))
) t
WHERE c.brand_id = %(brand_id)s AND c.status IN ('draft', 'scheduled', 'active', 'paused')
  AND NOT t.tier = ANY(%(names)s::text[])
GROUP BY c.name
ORDER BY c.name;
