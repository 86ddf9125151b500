-- item_shipment --
-- The shipment that activated an item (at most one: activations never overlap), with its receipt.
SELECT s.id, s.distributor_id, d.name AS distributor_name,
       -- The territory the item was shipped under.
       coalesce((SELECT t.regions FROM distributor_territories t
                 WHERE t.distributor_id = s.distributor_id AND t.valid_from <= s.shipped_at
                 ORDER BY t.valid_from DESC LIMIT 1), d.regions) AS regions,
       s.reference, s.shipped_at, s.received_at
FROM activations a
JOIN shipments s ON s.id = a.shipment_id
JOIN distributors d ON d.id = s.distributor_id
WHERE a.batch_id = %(batch_id)s AND a.brand_id = %(brand_id)s
  AND a.start_index <= %(position)s AND %(position)s < a.stop_index;

-- item_scans --
-- Every scan of the code, oldest first (the scans_code index), including those before activation.
SELECT id, scanned_at, verdict, region, lat::float8 AS lat, lng::float8 AS lng, diverted,
       member_id IS NOT NULL AS by_member
FROM scans
WHERE brand_id = %(brand_id)s AND key_id = %(key_id)s AND code_index = %(code_index)s
ORDER BY scanned_at, id
LIMIT %(limit)s;
