-- insert_distributor --
INSERT INTO distributors (brand_id, name, regions) VALUES (%(brand_id)s, %(name)s, %(regions)s)
RETURNING id, brand_id, name, regions, created_at;

-- get_distributor --
SELECT id, brand_id, name, regions, created_at FROM distributors
WHERE brand_id = %(brand_id)s AND id = %(distributor_id)s;

-- list_distributors --
-- `only_id` scopes a distributor's token to itself.
SELECT id, brand_id, name, regions, created_at FROM distributors
WHERE brand_id = %(brand_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
  AND (%(only_id)s::uuid IS NULL OR id = %(only_id)s)
ORDER BY id LIMIT %(limit)s;

-- update_distributor_regions --
UPDATE distributors SET regions = %(regions)s WHERE brand_id = %(brand_id)s AND id = %(distributor_id)s
RETURNING id, brand_id, name, regions, created_at;

-- aggregation_ranges --
-- Every item range under the named cases and pallets (a pallet's cases' items), and which SSCCs exist.
WITH RECURSIVE named AS (
    SELECT id, sscc FROM aggregations WHERE brand_id = %(brand_id)s AND sscc = ANY(%(sscc)s)
), tree AS (
    SELECT id, 0 AS depth FROM named
    UNION ALL
    SELECT a.id, t.depth + 1 FROM aggregations a JOIN tree t ON a.parent_id = t.id WHERE t.depth < 16
)
SELECT i.batch_id, i.start_index, i.stop_index, NULL::text AS sscc
FROM aggregation_items i JOIN tree t ON t.id = i.aggregation_id
UNION ALL
SELECT NULL, NULL, NULL, sscc FROM named;

-- insert_shipment --
INSERT INTO shipments (brand_id, distributor_id, reference, items, shipped_at, shipped_by)
VALUES (%(brand_id)s, %(distributor_id)s, %(reference)s, %(items)s, %(now)s, %(actor)s)
RETURNING id, brand_id, distributor_id, reference, items, shipped_at, shipped_by, received_at, received_by;

-- insert_activation --
INSERT INTO activations (brand_id, shipment_id, distributor_id, batch_id, batch_seq, start_index, stop_index)
VALUES (%(brand_id)s, %(shipment_id)s, %(distributor_id)s, %(batch_id)s, %(batch_seq)s, %(start_index)s,
        %(stop_index)s);

-- get_shipment --
SELECT id, brand_id, distributor_id, reference, items, shipped_at, shipped_by, received_at, received_by
FROM shipments
WHERE brand_id = %(brand_id)s AND id = %(shipment_id)s
  AND (%(only_distributor)s::uuid IS NULL OR distributor_id = %(only_distributor)s);

-- list_shipments --
-- Newest first, each with its ranges, as `get_shipment` answers (a list that showed none looked like
-- empty shipments). `after` is the last shipment of the previous page.
SELECT s.id, s.brand_id, s.distributor_id, s.reference, s.items, s.shipped_at, s.shipped_by, s.received_at,
       s.received_by,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('batch_id', a.batch_id, 'start', a.start_index,
                                                     'stop', a.stop_index)
                                  ORDER BY a.batch_id, a.start_index), '[]')
        FROM activations a WHERE a.shipment_id = s.id) AS ranges
FROM shipments s
WHERE s.brand_id = %(brand_id)s
  AND (%(after)s::uuid IS NULL
       OR (s.shipped_at, s.id) < (SELECT p.shipped_at, p.id FROM shipments p
                                  WHERE p.id = %(after)s AND p.brand_id = %(brand_id)s))
  AND (%(only_distributor)s::uuid IS NULL OR s.distributor_id = %(only_distributor)s)
  AND (%(distributor_id)s::uuid IS NULL OR s.distributor_id = %(distributor_id)s)
  AND (%(received)s::boolean IS NULL OR (s.received_at IS NOT NULL) = %(received)s)
ORDER BY s.shipped_at DESC, s.id DESC LIMIT %(limit)s;

-- shipment_ranges --
SELECT batch_id, start_index AS start, stop_index AS stop FROM activations
WHERE shipment_id = %(shipment_id)s ORDER BY batch_id, start_index;

-- receive_shipment --
-- Receiving twice keeps the first receipt.
UPDATE shipments SET received_at = %(now)s, received_by = %(actor)s
WHERE brand_id = %(brand_id)s AND id = %(shipment_id)s AND received_at IS NULL
  AND (%(only_distributor)s::uuid IS NULL OR distributor_id = %(only_distributor)s)
RETURNING id;

-- activation_summary --
-- A batch's activation at a glance: items activated, and scans of items that were not (leaked codes).
-- Every code of an on_issue batch is live, shipped or not (as batch_scan_rates in reports.sql counts).
SELECT b.id AS batch_id, b.activation, b.quantity,
       CASE WHEN b.activation = 'on_issue' THEN b.quantity
            ELSE coalesce((SELECT sum(stop_index - start_index) FROM activations a WHERE a.batch_id = b.id), 0)
       END::bigint AS activated,
       (SELECT count(*) FROM scans s WHERE s.batch_id = b.id AND s.verdict = 'not_activated')::bigint
           AS not_activated_scans
FROM batches b WHERE b.brand_id = %(brand_id)s AND b.id = %(batch_id)s;
