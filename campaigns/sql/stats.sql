-- campaign_totals --
-- Rewarded scans: every points award, every coupon of a coupon campaign and every draw (a draw counts
-- whatever it gave; a coupon it gave is counted with the coupons too).
WITH given AS (
    SELECT member_id, day, cost_cents, points, 'points' AS kind, NULL::text AS result
    FROM points_awards WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT d.member_id, d.day, d.cost_cents, p.points, 'lucky_draw', d.result
    FROM draws d LEFT JOIN prizes p ON p.id = d.prize_id
    WHERE d.campaign_id = %(campaign_id)s
    UNION ALL
    SELECT co.member_id, co.day, co.cost_cents, NULL, 'coupon', NULL
    FROM coupons co JOIN campaigns c ON c.id = co.campaign_id AND c.kind = 'coupon'
    WHERE co.campaign_id = %(campaign_id)s
)
SELECT count(*)::bigint AS rewarded_scans,
       count(DISTINCT member_id)::bigint AS participants,
       coalesce(sum(points) FILTER (WHERE kind = 'points' OR result = 'won'), 0)::bigint AS points_given,
       count(*) FILTER (WHERE result = 'won')::bigint AS prizes_won,
       (SELECT count(*) FROM coupons WHERE campaign_id = %(campaign_id)s)::bigint AS coupons_issued,
       (SELECT count(*) FROM coupons WHERE campaign_id = %(campaign_id)s AND uses > 0)::bigint AS coupons_used
FROM given;

-- draw_results --
SELECT result, count(*)::bigint AS draws FROM draws WHERE campaign_id = %(campaign_id)s
GROUP BY result ORDER BY result;

-- prize_figures --
SELECT id, name, kind, stock, awarded, cost_cents, (awarded * cost_cents)::bigint AS spent_cents
FROM prizes WHERE campaign_id = %(campaign_id)s ORDER BY id;

-- campaign_days --
-- The campaign's local days (the day each reward counted against the daily budget).
WITH given AS (
    SELECT member_id, day, cost_cents FROM points_awards WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT member_id, day, cost_cents FROM draws WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT co.member_id, co.day, co.cost_cents
    FROM coupons co JOIN campaigns c ON c.id = co.campaign_id AND c.kind = 'coupon'
    WHERE co.campaign_id = %(campaign_id)s
)
SELECT day, count(*)::bigint AS rewarded_scans, count(DISTINCT member_id)::bigint AS participants,
       coalesce(sum(cost_cents), 0)::bigint AS spent_cents
FROM given GROUP BY day ORDER BY day DESC LIMIT %(days)s;

-- winners_page --
-- Winners of a lucky draw, oldest first, keyset-paged by (won_at, scan_id); the phone is masked.
SELECT d.drawn_at AS won_at, d.scan_id, p.name AS prize, p.kind AS prize_kind, d.slot, d.member_id,
       CASE WHEN m.phone_last4 IS NULL THEN '' ELSE '*******' || m.phone_last4 END AS phone,
       c.status AS claim_status
FROM draws d
JOIN prizes p ON p.id = d.prize_id
JOIN members m ON m.id = d.member_id
LEFT JOIN prize_claims c ON c.campaign_id = d.campaign_id AND c.scan_id = d.scan_id
WHERE d.campaign_id = %(campaign_id)s AND d.result = 'won'
  AND (%(after_at)s::timestamptz IS NULL OR (d.drawn_at, d.scan_id) > (%(after_at)s, %(after_scan)s::uuid))
ORDER BY d.drawn_at, d.scan_id
LIMIT %(limit)s;

-- campaign_regions --
-- Rewarded scans and spend by the region the scan happened in (its location or IP; unknown otherwise).
WITH given AS (
    SELECT scan_id, awarded_at AS at, cost_cents FROM points_awards WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT scan_id, drawn_at, cost_cents FROM draws WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT co.scan_id, co.issued_at, co.cost_cents
    FROM coupons co JOIN campaigns c ON c.id = co.campaign_id AND c.kind = 'coupon'
    WHERE co.campaign_id = %(campaign_id)s
)
-- LATERAL: one primary-key probe per reward, pruned at run time to the month of its scan. A plain join
-- is costed as a probe of every monthly partition, so the planner would read the whole scan log instead.
SELECT coalesce(s.region, 'unknown') AS region, count(*)::bigint AS rewarded_scans,
       coalesce(sum(g.cost_cents), 0)::bigint AS spent_cents
FROM given g
LEFT JOIN LATERAL (
    SELECT region FROM scans WHERE scans.id = g.scan_id AND scans.scanned_at = g.at LIMIT 1
) s ON true
GROUP BY 1 ORDER BY rewarded_scans DESC, region
LIMIT %(regions)s;
