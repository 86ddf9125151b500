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
