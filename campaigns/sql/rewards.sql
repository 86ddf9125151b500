-- member_exists --
-- A member token is signed, but the member it names must still be the brand's own.
SELECT EXISTS (SELECT 1 FROM members WHERE brand_id = %(brand_id)s AND id = %(member_id)s) AS found;

-- prizes_won --
-- Newest first; scoped by the campaign's brand so a member id never reads across tenants.
SELECT d.campaign_id, c.name AS campaign_name, d.scan_id, p.id AS prize_id, p.name, p.kind, p.points, d.slot,
       d.drawn_at AS won_at, p.kind = 'physical' AS needs_claim, pc.status AS claim_status,
       pc.shipped_at, pc.carrier, pc.tracking_number
FROM draws d
JOIN campaigns c ON c.id = d.campaign_id
JOIN prizes p ON p.id = d.prize_id
LEFT JOIN prize_claims pc ON pc.campaign_id = d.campaign_id AND pc.scan_id = d.scan_id
WHERE d.member_id = %(member_id)s AND c.brand_id = %(brand_id)s AND d.result = 'won'
ORDER BY d.drawn_at DESC, d.scan_id
LIMIT %(limit)s;

-- prize_to_claim --
-- The member's own win, in the member's brand: anything else is "not found".
SELECT p.kind FROM draws d
JOIN campaigns c ON c.id = d.campaign_id
JOIN prizes p ON p.id = d.prize_id
WHERE d.campaign_id = %(campaign_id)s AND d.scan_id = %(scan_id)s AND d.result = 'won'
  AND d.member_id = %(member_id)s AND c.brand_id = %(brand_id)s;

-- save_claim --
-- A claim may be corrected until the prize ships.
INSERT INTO prize_claims AS pc (campaign_id, scan_id, brand_id, member_id, address_sealed, claimed_at)
VALUES (%(campaign_id)s, %(scan_id)s, %(brand_id)s, %(member_id)s, %(sealed)s, %(now)s)
ON CONFLICT (campaign_id, scan_id) DO UPDATE SET address_sealed = excluded.address_sealed,
                                                 claimed_at = excluded.claimed_at
WHERE pc.status = 'claimed'
RETURNING campaign_id, scan_id, status, claimed_at;
