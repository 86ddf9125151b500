-- insert_product --
INSERT INTO products (brand_id, gtin, name, sku, image_url, attributes, facts)
VALUES (%(brand_id)s, %(gtin)s, %(name)s, %(sku)s, %(image_url)s, %(attributes)s, %(facts)s)
RETURNING id, brand_id, gtin, name, sku, image_url, attributes, facts, created_at, updated_at;

-- wait_for_gs1_claims --
-- Claims being recorded finish first (brands.set_gs1_company_prefixes holds this lock exclusively). Its
-- own statement: the check after it takes a snapshot that sees what they committed.
SELECT pg_advisory_xact_lock_shared(hashtext('onecode.gs1_company_prefixes'));

-- gtin_claimed_elsewhere --
-- Whether the GTIN (indicator digit aside) is under a GS1 company prefix another brand has shown to be
-- its own (brands.gs1_company_prefixes).
SELECT EXISTS (
    SELECT 1 FROM brands b CROSS JOIN unnest(b.gs1_company_prefixes) AS prefix
    WHERE b.id <> %(brand_id)s AND starts_with(substr(%(gtin)s, 2), prefix)
) AS claimed;

-- get_product --
SELECT id, brand_id, gtin, name, sku, image_url, attributes, facts, created_at, updated_at
FROM products WHERE id = %(product_id)s AND brand_id = %(brand_id)s;

-- get_product_by_gtin --
SELECT id, brand_id, gtin, name, sku, image_url, attributes, facts, created_at, updated_at
FROM products WHERE gtin = %(gtin)s AND brand_id = %(brand_id)s;

-- count_brand_products --
SELECT count(*) AS n FROM products WHERE brand_id = %(brand_id)s AND id = ANY(%(ids)s);

-- list_products --
SELECT id, brand_id, gtin, name, sku, image_url, attributes, facts, created_at, updated_at
FROM products
WHERE brand_id = %(brand_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
ORDER BY id LIMIT %(limit)s;

-- update_product --
UPDATE products SET
    name = %(name)s, sku = %(sku)s, image_url = %(image_url)s,
    attributes = %(attributes)s, facts = %(facts)s, updated_at = now()
WHERE id = %(product_id)s AND brand_id = %(brand_id)s
RETURNING id, brand_id, gtin, name, sku, image_url, attributes, facts, created_at, updated_at;

-- product_referrers --
-- What marketers set up naming the product (campaigns still to run, saved segments, rule tags): deleted,
-- the product would leave them naming an unknown product.
SELECT 'campaign ' || quote_literal(name) FROM campaigns
WHERE brand_id = %(brand_id)s AND status IN ('draft', 'scheduled', 'active', 'paused')
  AND (eligibility -> 'product_ids' ? %(product_id)s::text
       OR coalesce(points_reward -> 'per_product', '{}') ? %(product_id)s::text)
UNION ALL
SELECT 'segment ' || quote_literal(name) FROM segments
WHERE brand_id = %(brand_id)s AND filter -> 'products_any' ? %(product_id)s::text
UNION ALL
SELECT 'tag ' || quote_literal(name) FROM tags
WHERE brand_id = %(brand_id)s AND rule -> 'product_ids' ? %(product_id)s::text;

-- delete_product --
-- Only products that never had a batch can go: printed codes keep pointing at them.
DELETE FROM products
WHERE id = %(product_id)s AND brand_id = %(brand_id)s
  AND NOT EXISTS (SELECT 1 FROM batches WHERE product_id = %(product_id)s)
RETURNING id;

-- insert_key --
INSERT INTO brand_keys (brand_id, key_id, sealed_mac_key, ed25519_public, sealed_ed25519)
VALUES (%(brand_id)s, %(key_id)s, %(sealed_mac_key)s, %(ed25519_public)s, %(sealed_ed25519)s)
RETURNING brand_id, key_id, created_at;

-- lock_brand_keys --
-- Serialises rotations and first-key creation of one brand.
SELECT id FROM brands WHERE id = %(brand_id)s FOR UPDATE;

-- list_keys --
SELECT brand_id, key_id, sealed_mac_key, ed25519_public, sealed_ed25519, next_index, created_at
FROM brand_keys WHERE brand_id = %(brand_id)s ORDER BY created_at, key_id;

-- reserve_range --
-- Atomically take `quantity` indices from the newest key's space; no row when the space is exhausted.
UPDATE brand_keys SET next_index = next_index + %(quantity)s
WHERE brand_id = %(brand_id)s AND key_id = %(key_id)s AND next_index + %(quantity)s <= 4294967296
RETURNING next_index - %(quantity)s AS start_index;

-- insert_batch --
INSERT INTO batches (brand_id, product_id, key_id, start_index, quantity, lot, production_date, line, signed,
                     activation)
VALUES (%(brand_id)s, %(product_id)s, %(key_id)s, %(start_index)s, %(quantity)s, %(lot)s,
        %(production_date)s, %(line)s, %(signed)s, %(activation)s)
RETURNING id, seq, brand_id, product_id, key_id, start_index, quantity, lot, production_date, line, signed,
          activation, status, created_at, voided_at;

-- get_batch --
SELECT id, seq, brand_id, product_id, key_id, start_index, quantity, lot, production_date, line, signed,
       activation, status, created_at, voided_at
FROM batches WHERE id = %(batch_id)s AND brand_id = %(brand_id)s;

-- list_batches --
SELECT id, seq, brand_id, product_id, key_id, start_index, quantity, lot, production_date, line, signed,
       activation, status, created_at, voided_at
FROM batches
WHERE brand_id = %(brand_id)s
  AND (%(product_id)s::uuid IS NULL OR product_id = %(product_id)s::uuid)
  AND (%(after)s::bigint IS NULL OR seq > %(after)s::bigint)
ORDER BY seq LIMIT %(limit)s;

-- set_batch_status --
UPDATE batches SET status = %(status)s,
    voided_at = CASE WHEN %(status)s = 'voided' THEN now() ELSE NULL END
WHERE id = %(batch_id)s AND brand_id = %(brand_id)s AND status <> 'voided'
RETURNING id, seq, brand_id, product_id, key_id, start_index, quantity, lot, production_date, line, signed,
          activation, status, created_at, voided_at;

-- insert_trace_event --
INSERT INTO trace_events (brand_id, event_type, biz_step, batch_id, aggregation_id, start_index, stop_index, payload)
VALUES (%(brand_id)s, %(event_type)s, %(biz_step)s, %(batch_id)s, %(aggregation_id)s, %(start_index)s,
        %(stop_index)s, %(payload)s)
RETURNING id;

-- insert_aggregation --
INSERT INTO aggregations (brand_id, level, sscc, parent_id)
VALUES (%(brand_id)s, %(level)s, %(sscc)s, %(parent_id)s)
RETURNING id, brand_id, level, sscc, parent_id, created_at;

-- insert_aggregations --
-- Regular packing's cases or pallets in one statement; `parent_ids` null, or one per SSCC.
INSERT INTO aggregations (brand_id, level, sscc, parent_id)
SELECT %(brand_id)s, %(level)s, t.sscc, (%(parent_ids)s::uuid[])[t.n]
FROM unnest(%(ssccs)s::text[]) WITH ORDINALITY AS t(sscc, n)
ORDER BY t.n
RETURNING id, brand_id, level, sscc, parent_id, created_at;

-- range_packed --
-- Some position of [start_index, stop_index) of the batch already sits in a case (answered by the gist
-- index of aggregation_items_one_parent, over the same positions).
SELECT 1 FROM aggregation_items
WHERE positions && int8range(%(batch_seq)s * 4294967296 + %(start_index)s,
                             %(batch_seq)s * 4294967296 + %(stop_index)s)
LIMIT 1;

-- insert_regular_items --
-- The items of regularly packed cases: the n-th case (from 1) holds `items_per_case` consecutive
-- positions from start_index + (n - 1) * items_per_case, the last one up to stop_index.
INSERT INTO aggregation_items (aggregation_id, brand_id, batch_id, batch_seq, start_index, stop_index)
SELECT c.id, %(brand_id)s, %(batch_id)s, %(batch_seq)s,
       %(start_index)s + (c.n - 1) * %(items_per_case)s,
       least(%(start_index)s + c.n * %(items_per_case)s, %(stop_index)s)
FROM unnest(%(case_ids)s::uuid[]) WITH ORDINALITY AS c(id, n);

-- get_aggregation --
SELECT id, brand_id, level, sscc, parent_id, created_at
FROM aggregations WHERE id = %(aggregation_id)s AND brand_id = %(brand_id)s;

-- get_aggregation_by_sscc --
SELECT id, brand_id, level, sscc, parent_id, created_at
FROM aggregations WHERE sscc = %(sscc)s AND brand_id = %(brand_id)s;

-- insert_aggregation_items --
INSERT INTO aggregation_items (aggregation_id, brand_id, batch_id, batch_seq, start_index, stop_index)
VALUES (%(aggregation_id)s, %(brand_id)s, %(batch_id)s, %(batch_seq)s, %(start_index)s, %(stop_index)s);

-- aggregation_item_ranges --
SELECT batch_id, start_index, stop_index FROM aggregation_items
WHERE aggregation_id = %(aggregation_id)s ORDER BY batch_id, start_index;

-- child_aggregations --
SELECT id, brand_id, level, sscc, parent_id, created_at
FROM aggregations WHERE parent_id = %(aggregation_id)s AND brand_id = %(brand_id)s ORDER BY sscc;

-- parent_of_item --
SELECT a.id, a.brand_id, a.level, a.sscc, a.parent_id, a.created_at
FROM aggregation_items i JOIN aggregations a ON a.id = i.aggregation_id
WHERE i.batch_id = %(batch_id)s AND i.brand_id = %(brand_id)s
  AND i.start_index <= %(index)s AND %(index)s < i.stop_index;

-- parent_chain --
-- From an aggregation up to the outermost pallet.
WITH RECURSIVE chain AS (
    SELECT id, brand_id, level, sscc, parent_id, created_at, 0 AS depth
    FROM aggregations WHERE id = %(aggregation_id)s AND brand_id = %(brand_id)s
    UNION ALL
    SELECT a.id, a.brand_id, a.level, a.sscc, a.parent_id, a.created_at, chain.depth + 1
    FROM aggregations a JOIN chain ON a.id = chain.parent_id
    WHERE chain.depth < 16
)
SELECT id, brand_id, level, sscc, parent_id, created_at FROM chain ORDER BY depth;

-- registry_products --
-- Each registry query: the changes after the newest loaded, and the skipped ones asked for again (see
-- codegen.changes).
SELECT p.id, p.brand_id, p.gtin, p.name, p.facts, p.change_seq, b.short_code
FROM products p JOIN brands b ON b.id = p.brand_id
WHERE p.change_seq > %(since)s OR p.change_seq = ANY(%(missing)s::bigint[]);

-- registry_keys --
SELECT k.brand_id, k.key_id, k.sealed_mac_key, k.change_seq, b.short_code
FROM brand_keys k JOIN brands b ON b.id = k.brand_id
WHERE k.change_seq > %(since)s OR k.change_seq = ANY(%(missing)s::bigint[]);

-- registry_batches --
SELECT id, brand_id, product_id, key_id, start_index, quantity, lot, production_date, status, activation,
       change_seq
FROM batches WHERE change_seq > %(since)s OR change_seq = ANY(%(missing)s::bigint[]);

-- registry_clone_rules --
SELECT brand_id, devices, members, regions, max_speed_kmh, burst, change_seq FROM clone_rules
WHERE change_seq > %(since)s OR change_seq = ANY(%(missing)s::bigint[]);

-- registry_activations --
-- Activated item ranges (insert-only). Their territory is the distributor's (registry_distributors): a
-- change of regions reloads one distributor row, not each of its ranges.
SELECT batch_id, start_index, stop_index, shipment_id, distributor_id, change_seq
FROM activations
WHERE change_seq > %(since)s OR change_seq = ANY(%(missing)s::bigint[]);

-- registry_distributors --
-- Each distributor's authorized sales regions, for diversion checks (new ones and changed regions).
SELECT id, regions, change_seq FROM distributors
WHERE change_seq > %(since)s OR change_seq = ANY(%(missing)s::bigint[]);

-- registry_version --
SELECT last_value FROM registry_change_seq;

-- reserve_sscc_refs --
-- Take `count` serial references for SSCCs under one company prefix.
INSERT INTO sscc_counters AS c (brand_id, company_prefix, next_ref)
VALUES (%(brand_id)s, %(company_prefix)s, %(count)s)
ON CONFLICT (brand_id, company_prefix) DO UPDATE SET next_ref = c.next_ref + %(count)s
RETURNING next_ref - %(count)s AS first_ref;

-- recorded_ssccs --
-- Which of these SSCCs the brand already uses (regular packing passes over them).
SELECT sscc FROM aggregations WHERE brand_id = %(brand_id)s AND sscc = ANY(%(sscc)s);

-- adopt_children --
-- Put cases under a pallet; only unparented aggregations of the same brand and a lower level move.
UPDATE aggregations SET parent_id = %(parent_id)s
WHERE brand_id = %(brand_id)s AND sscc = ANY(%(sscc)s) AND parent_id IS NULL AND level = 'case'
RETURNING id;

-- batch_parents --
-- The cases of a batch's items, for the `parent` column of print files.
SELECT i.start_index, i.stop_index, a.sscc
FROM aggregation_items i JOIN aggregations a ON a.id = i.aggregation_id
WHERE i.batch_id = %(batch_id)s AND i.brand_id = %(brand_id)s
ORDER BY i.start_index;

-- brand_short_code --
SELECT short_code FROM brands WHERE id = %(brand_id)s;

-- product_brand_by_gtin --
-- GTINs are unique worldwide, so operators' CLI commands may name a product by GTIN alone.
SELECT brand_id FROM products WHERE gtin = %(gtin)s;

-- batch_brand --
SELECT brand_id FROM batches WHERE id = %(batch_id)s;

-- registry_blocks --
-- Blocks made, lifted or changed since; expiry is checked at scan time. A member's block comes with the
-- devices bound to the member then: a scan from one of them without the member's cookie is the member's.
SELECT b.id, b.brand_id, b.kind, b.value, b.expires_at, b.lifted_at, b.change_seq,
       CASE WHEN b.kind = 'member' THEN
           (SELECT coalesce(array_agg(d.device_id ORDER BY d.device_id), '{}') FROM member_devices d
            WHERE d.brand_id = b.brand_id AND d.member_id = b.value::uuid)
       ELSE '{}' END AS member_devices
FROM blocks b
WHERE b.change_seq > %(since)s OR b.change_seq = ANY(%(missing)s::bigint[]);
