-- member_exists --
-- A member token is signed, but the member it names must still be the brand's own.
SELECT EXISTS (SELECT 1 FROM members WHERE brand_id = %(brand_id)s AND id = %(member_id)s) AS found;

-- prizes_won --
-- Newest first; scoped by the campaign's brand so a member id never reads across tenants.
SELECT d.campaign_id, c.name AS campaign_name, p.id AS prize_id, p.name, p.kind, p.points, d.slot,
       d.drawn_at AS won_at
FROM draws d
JOIN campaigns c ON c.id = d.campaign_id
JOIN prizes p ON p.id = d.prize_id
WHERE d.member_id = %(member_id)s AND c.brand_id = %(brand_id)s AND d.result = 'won'
ORDER BY d.drawn_at DESC, d.scan_id
LIMIT %(limit)s;
