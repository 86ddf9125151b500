-- record_scans --
-- A whole group commit's genuine scans in one statement (one round trip, one JSON parameter that
-- PostgreSQL parses faster than the client could build arrays). For each scan: find or create the
-- device's member (unless a member token named one), count the code's claim (the first insert is
-- the first scan), and log the scan. Each step touches its rows in key order, so concurrent writers
-- lock them in one order and cannot deadlock. Rows come back by `seq`, the scan's place in the batch.
WITH input AS (
    SELECT * FROM json_to_recordset(%(scans)s::json) AS t(
        seq integer, scan_id uuid, scanned_at timestamptz, brand_id uuid, product_id uuid, batch_id uuid,
        key_id smallint, code_index bigint, device_id text, member_id uuid, enrolled boolean,
        candidate_id uuid, ip_prefix inet, lat numeric, lng numeric, ua_family text, distributor_id uuid,
        region text, city text, diverted boolean, suspect boolean, risk_score integer, risk_reasons text)
), new_devices AS (
    SELECT DISTINCT ON (brand_id, device_id) brand_id, device_id, candidate_id, product_id, batch_id
    FROM input WHERE member_id IS NULL
    ORDER BY brand_id, device_id, seq
), dev AS (
    INSERT INTO member_devices AS d (brand_id, device_id, member_id)
    SELECT brand_id, device_id, candidate_id FROM new_devices ORDER BY brand_id, device_id
    ON CONFLICT (brand_id, device_id) DO UPDATE SET last_seen = now()
    RETURNING d.brand_id, d.device_id, d.member_id, (d.xmax = 0) AS inserted
), created AS (
    INSERT INTO members (id, brand_id, acquired_product_id, acquired_batch_id)
    SELECT dev.member_id, dev.brand_id, nd.product_id, nd.batch_id
    FROM dev JOIN new_devices nd USING (brand_id, device_id)
    WHERE dev.inserted
), resolved AS (
    -- A token may name an anonymous member since merged into a phone's member: the scan is the phone's.
    -- Members are read one by one by primary key (scalar subqueries, never a join): this statement is
    -- prepared, and a join planned while the table was small (a fresh deployment) stayed a hash of
    -- the whole members table, read again for every batch as the table grew.
    SELECT i.*,
           coalesce(i.merged_into, i.member_id, dev.member_id) AS resolved_member_id,
           CASE WHEN i.merged_into IS NOT NULL THEN true
                WHEN i.member_id IS NOT NULL THEN i.enrolled
                WHEN dev.inserted THEN false  -- the anonymous member this statement creates
                ELSE coalesce((SELECT m.enrolled_at IS NOT NULL FROM members m WHERE m.id = dev.member_id), false)
           END AS resolved_enrolled,
           coalesce(i.member_id IS NULL AND dev.inserted, false) AS member_created
    FROM (SELECT input.*, (SELECT tm.merged_into FROM members tm WHERE tm.id = input.member_id) AS merged_into
          FROM input) i
    LEFT JOIN dev ON i.member_id IS NULL AND dev.brand_id = i.brand_id AND dev.device_id = i.device_id
), placed AS (
    -- A member who withdrew location consent leaves no location in the log, whatever still sends one
    -- (the place named by it goes too); looked up only for scans that came with a location.
    SELECT r.*,
           CASE WHEN r.lat IS NULL THEN false
                ELSE coalesce((SELECT m.location_withdrawn_at IS NOT NULL FROM members m
                               WHERE m.id = r.resolved_member_id), false)
           END AS location_withdrawn
    FROM resolved r
), per_code AS (
    SELECT brand_id, key_id, code_index, count(*)::integer AS scans, max(scanned_at) AS last_at,
           min(seq) AS first_seq
    FROM input GROUP BY brand_id, key_id, code_index
), claims AS (
    INSERT INTO code_claims AS c (brand_id, key_id, code_index, batch_id, product_id, first_scan_id,
                                  first_member_id, first_device_id, first_scanned_at, scan_count,
                                  last_scanned_at)
    SELECT p.brand_id, p.key_id, p.code_index, r.batch_id, r.product_id, r.scan_id, r.resolved_member_id,
           r.device_id, r.scanned_at, p.scans, p.last_at
    FROM per_code p JOIN resolved r ON r.seq = p.first_seq
    ORDER BY p.brand_id, p.key_id, p.code_index
    ON CONFLICT (brand_id, key_id, code_index)
    DO UPDATE SET scan_count = c.scan_count + excluded.scan_count, last_scanned_at = excluded.last_scanned_at
    RETURNING c.brand_id, c.key_id, c.code_index, (c.xmax = 0) AS inserted, c.scan_count AS total,
              c.first_scanned_at
), numbered AS (
    SELECT r.*, c.first_scanned_at,
           c.inserted AND r.seq = p.first_seq AS first,
           (c.total - p.scans + row_number() OVER (PARTITION BY r.brand_id, r.key_id, r.code_index ORDER BY r.seq))::integer
               AS scan_number
    FROM placed r
    JOIN claims c USING (brand_id, key_id, code_index)
    JOIN per_code p USING (brand_id, key_id, code_index)
), logged AS (
    INSERT INTO scans (id, scanned_at, brand_id, product_id, batch_id, key_id, code_index, verdict, scan_number,
                       device_id, member_id, ip_prefix, lat, lng, ua_family, distributor_id, region, city,
                       diverted)
    SELECT scan_id, scanned_at, brand_id, product_id, batch_id, key_id, code_index,
           CASE WHEN first THEN 'genuine_first' WHEN suspect THEN 'suspect_clone' ELSE 'genuine_repeat' END,
           scan_number, device_id, resolved_member_id, ip_prefix,
           CASE WHEN NOT location_withdrawn THEN round(lat, 2) END,
           CASE WHEN NOT location_withdrawn THEN round(lng, 2) END, ua_family, distributor_id,
           CASE WHEN NOT location_withdrawn THEN region END, CASE WHEN NOT location_withdrawn THEN city END,
           diverted AND NOT location_withdrawn
    FROM numbered
), flagged AS (
    -- A code past a clone threshold goes (back) on the brand's review list; a first scan never does.
    INSERT INTO flagged_codes AS f (brand_id, key_id, code_index, batch_id, score, reasons, suspect_scans,
                                    first_flagged_at, last_flagged_at)
    SELECT brand_id, key_id, code_index, max(batch_id::text)::uuid, max(risk_score),
           string_to_array(max(risk_reasons), ','), count(*), min(scanned_at), max(scanned_at)
    FROM numbered WHERE suspect AND NOT first
    GROUP BY brand_id, key_id, code_index ORDER BY brand_id, key_id, code_index
    ON CONFLICT (brand_id, key_id, code_index) DO UPDATE
    -- Every reason the code was ever flagged for, beside its highest score: the list explains the score.
    SET score = greatest(f.score, excluded.score),
        reasons = f.reasons || ARRAY(SELECT r FROM unnest(excluded.reasons) AS r WHERE r <> ALL(f.reasons)),
        suspect_scans = f.suspect_scans + excluded.suspect_scans, last_flagged_at = excluded.last_flagged_at,
        status = CASE WHEN f.status = 'cleared' THEN 'open' ELSE f.status END
)
SELECT seq, first, scan_number, first_scanned_at, resolved_member_id, resolved_enrolled, member_created,
       -- The member's points as the answer shows them: open lots not yet expired (see ledger.sql).
       (SELECT coalesce(sum(l.remaining), 0)::integer FROM points_lots l
        WHERE l.member_id = numbered.resolved_member_id AND l.remaining > 0 AND l.expires_at > now())
           AS points_balance
FROM numbered;

-- copy_unactivated --
-- Genuine codes that no shipment activated (a leaked print file): logged, never claimed nor rewarded.
COPY scans (id, scanned_at, brand_id, product_id, batch_id, key_id, code_index, verdict, scan_number, device_id,
            ip_prefix, lat, lng, ua_family, region) FROM STDIN;

-- copy_counterfeits --
COPY counterfeit_scans (id, scanned_at, claimed_brand_id, outcome, code, device_id, ip_prefix, lat, lng,
                        ua_family, region) FROM STDIN;

-- insert_idempotency --
INSERT INTO scan_idempotency (device_id, key, request_hash, response)
SELECT * FROM unnest(%(device_ids)s::text[], %(keys)s::text[], %(hashes)s::bytea[], %(responses)s::bytea[])
ON CONFLICT (device_id, key) DO NOTHING;

-- get_idempotency --
SELECT request_hash, response FROM scan_idempotency
WHERE device_id = %(device_id)s AND key = %(key)s AND created_at > now() - interval '24 hours';

-- purge_idempotency --
DELETE FROM scan_idempotency WHERE created_at < now() - interval '24 hours';

-- purge_sms_outbox --
-- What the development SMS adapter recorded (codes, texts to members) goes after `days`: it was never
-- meant to be kept, and a phone's blind index there is not renewed by a master-key rotation.
DELETE FROM sms_outbox WHERE created_at < now() - make_interval(days => %(days)s);

-- ensure_partitions --
SELECT ensure_scan_partitions(%(months_ahead)s);

-- missing_partitions --
-- The monthly partitions ensure_partitions would create (this month and `months_ahead` more), so that
-- `onecode partitions` can say what it created, or would create.
SELECT parent || '_' || to_char(m.month_start, 'YYYYMM') AS partition_name
FROM generate_series(0, %(months_ahead)s::integer) AS step
CROSS JOIN LATERAL (SELECT (date_trunc('month', now()) + make_interval(months => step))::date AS month_start) AS m
CROSS JOIN unnest(ARRAY['scans', 'counterfeit_scans']) AS parent
WHERE to_regclass(parent || '_' || to_char(m.month_start, 'YYYYMM')) IS NULL
ORDER BY m.month_start, parent;

-- drop_expired_partitions --
-- Retention of the scan log: why and how in drop_expired_scan_partitions (migration 0013).
SELECT parent, partition_name, range_start, range_end, action
FROM drop_expired_scan_partitions(%(retention_months)s::integer, %(dry_run)s::boolean);
