-- claims_page --
-- A campaign's claimed prizes, oldest win first, keyset-paged by (won_at, scan_id): a winner correcting
-- the address moves claimed_at, never a claim's place in the list. The caller checked the brand.
SELECT d.scan_id, d.prize_id, p.name AS prize, d.slot, d.drawn_at AS won_at, pc.member_id, pc.status,
       pc.claimed_at, pc.shipped_at, pc.carrier, pc.tracking_number, pc.address_sealed
FROM prize_claims pc
JOIN draws d ON d.campaign_id = pc.campaign_id AND d.scan_id = pc.scan_id
JOIN prizes p ON p.id = d.prize_id
WHERE pc.campaign_id = %(campaign_id)s AND pc.brand_id = %(brand_id)s
  AND (%(status)s::text IS NULL OR pc.status = %(status)s::text)
  AND (%(member_id)s::uuid IS NULL OR pc.member_id = %(member_id)s::uuid)
  AND (%(after_at)s::timestamptz IS NULL OR (d.drawn_at, d.scan_id) > (%(after_at)s, %(after_scan)s::uuid))
ORDER BY d.drawn_at, d.scan_id
LIMIT %(limit)s;

-- ship_claim --
-- Once: a claim already shipped (or shipped by a concurrent request, whose row lock this waits for)
-- matches nothing. From then on the winner's address correction is refused (rewards.sql save_claim).
UPDATE prize_claims pc
SET status = 'shipped', shipped_at = %(now)s, carrier = %(carrier)s, tracking_number = %(tracking_number)s
FROM draws d JOIN prizes p ON p.id = d.prize_id
WHERE pc.campaign_id = %(campaign_id)s AND pc.scan_id = %(scan_id)s AND pc.brand_id = %(brand_id)s
  AND pc.status = 'claimed' AND d.campaign_id = pc.campaign_id AND d.scan_id = pc.scan_id
RETURNING d.scan_id, d.prize_id, p.name AS prize, d.slot, d.drawn_at AS won_at, pc.member_id, pc.status,
          pc.claimed_at, pc.shipped_at, pc.carrier, pc.tracking_number, pc.address_sealed;

-- correct_shipment --
-- A shipped prize's courier or tracking number as it should have been typed (shipped_at stays); what it
-- said before comes back for the audit. A claim not shipped, or shipped by hand before shipments were
-- recorded, matches nothing.
WITH before AS (
    SELECT campaign_id, scan_id, carrier, tracking_number FROM prize_claims
    WHERE campaign_id = %(campaign_id)s AND scan_id = %(scan_id)s AND brand_id = %(brand_id)s
      AND status = 'shipped' AND shipped_at IS NOT NULL
    FOR UPDATE
)
UPDATE prize_claims pc
SET carrier = %(carrier)s, tracking_number = %(tracking_number)s
FROM before b, draws d JOIN prizes p ON p.id = d.prize_id
WHERE pc.campaign_id = b.campaign_id AND pc.scan_id = b.scan_id
  AND d.campaign_id = pc.campaign_id AND d.scan_id = pc.scan_id
RETURNING b.carrier AS carrier_before, b.tracking_number AS tracking_number_before,
          d.scan_id, d.prize_id, p.name AS prize, d.slot, d.drawn_at AS won_at, pc.member_id, pc.status,
          pc.claimed_at, pc.shipped_at, pc.carrier, pc.tracking_number, pc.address_sealed;

-- win_to_ship --
-- Why a win could not be marked shipped: none here (not won, or another brand's), not physical, not
-- claimed yet (no claim row), or shipped already.
SELECT p.kind, pc.status, pc.shipped_at, pc.carrier, pc.tracking_number
FROM draws d
JOIN campaigns c ON c.id = d.campaign_id
JOIN prizes p ON p.id = d.prize_id
LEFT JOIN prize_claims pc ON pc.campaign_id = d.campaign_id AND pc.scan_id = d.scan_id
WHERE d.campaign_id = %(campaign_id)s AND d.scan_id = %(scan_id)s AND d.result = 'won'
  AND c.brand_id = %(brand_id)s;
