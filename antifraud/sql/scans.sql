-- upsert_devices --
-- Find or create the member of each (brand, device): unknown devices get their candidate member id,
-- and that anonymous member is created in the same statement.
WITH input AS (
    SELECT * FROM unnest(%(brand_ids)s::uuid[], %(device_ids)s::text[], %(candidate_ids)s::uuid[],
                         %(product_ids)s::uuid[], %(batch_ids)s::uuid[])
        AS t(brand_id, device_id, candidate_id, product_id, batch_id)
), dev AS (
    INSERT INTO member_devices AS d (brand_id, device_id, member_id)
    SELECT brand_id, device_id, candidate_id FROM input
    ON CONFLICT (brand_id, device_id) DO UPDATE SET last_seen = now()
    RETURNING d.brand_id, d.device_id, d.member_id, (d.xmax = 0) AS inserted
), created AS (
    INSERT INTO members (id, brand_id, acquired_product_id, acquired_batch_id)
    SELECT dev.member_id, dev.brand_id, input.product_id, input.batch_id
    FROM dev JOIN input USING (brand_id, device_id)
    WHERE dev.inserted
    RETURNING id
)
SELECT dev.brand_id, dev.device_id, dev.member_id, coalesce(m.enrolled_at IS NOT NULL, false) AS enrolled
FROM dev LEFT JOIN members m ON m.id = dev.member_id;

-- upsert_claims --
-- One row per code; the first insert is the first scan, later ones only count. `inserted` tells which.
INSERT INTO code_claims AS c (brand_id, key_id, code_index, batch_id, product_id, first_scan_id,
                              first_member_id, first_device_id, first_scanned_at, scan_count, last_scanned_at)
SELECT * FROM unnest(%(brand_ids)s::uuid[], %(key_ids)s::smallint[], %(code_indexes)s::bigint[],
                     %(batch_ids)s::uuid[], %(product_ids)s::uuid[], %(scan_ids)s::uuid[],
                     %(member_ids)s::uuid[], %(device_ids)s::text[], %(scanned_ats)s::timestamptz[],
                     %(counts)s::integer[], %(last_ats)s::timestamptz[])
ON CONFLICT (brand_id, key_id, code_index)
DO UPDATE SET scan_count = c.scan_count + excluded.scan_count, last_scanned_at = excluded.last_scanned_at
RETURNING c.brand_id, c.key_id, c.code_index, (c.xmax = 0) AS inserted, c.scan_count, c.first_scanned_at;

-- copy_scans --
COPY scans (id, scanned_at, brand_id, product_id, batch_id, key_id, code_index, verdict, scan_number,
            device_id, member_id, ip_prefix, lat, lng, ua_family) FROM STDIN;

-- copy_counterfeits --
COPY counterfeit_scans (id, scanned_at, claimed_brand_id, outcome, code, device_id, ip_prefix, lat, lng,
                        ua_family) FROM STDIN;

-- insert_idempotency --
INSERT INTO scan_idempotency (device_id, key, request_hash, response)
SELECT * FROM unnest(%(device_ids)s::text[], %(keys)s::text[], %(hashes)s::bytea[], %(responses)s::bytea[])
ON CONFLICT (device_id, key) DO NOTHING;

-- get_idempotency --
SELECT request_hash, response FROM scan_idempotency
WHERE device_id = %(device_id)s AND key = %(key)s AND created_at > now() - interval '24 hours';

-- purge_idempotency --
DELETE FROM scan_idempotency WHERE created_at < now() - interval '24 hours';

-- claim_count --
SELECT scan_count FROM code_claims WHERE brand_id = %(brand_id)s AND key_id = %(key_id)s AND code_index = %(code_index)s;

-- ensure_partitions --
SELECT ensure_scan_partitions(%(months_ahead)s);
