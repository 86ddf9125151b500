-- Master-key rotation, last step (service/reseal.py): every value sealed under the master key, a page
-- at a time in primary-key order, and the page written back re-sealed under the current key. A write
-- changes a value only if it is still the one read: whatever changed it meanwhile wins, and the next
-- run looks at it again. `page_*` queries take `after_*` (the last key of the previous page) and `limit`;
-- `put_*` queries take arrays of keys, of the values read and of the values to write.

-- page_brand_keys_mac --
SELECT brand_id, key_id, sealed_mac_key FROM brand_keys
WHERE (brand_id, key_id) > (%(after_0)s::uuid, %(after_1)s::smallint)
ORDER BY brand_id, key_id LIMIT %(limit)s;

-- put_brand_keys_mac --
UPDATE brand_keys k SET sealed_mac_key = v.new
FROM unnest(%(key_0)s::uuid[], %(key_1)s::smallint[], %(old)s::bytea[], %(new)s::bytea[]) AS v(brand_id, key_id, old, new)
WHERE k.brand_id = v.brand_id AND k.key_id = v.key_id AND k.sealed_mac_key = v.old;

-- page_brand_keys_ed25519 --
SELECT brand_id, key_id, sealed_ed25519 FROM brand_keys
WHERE (brand_id, key_id) > (%(after_0)s::uuid, %(after_1)s::smallint)
ORDER BY brand_id, key_id LIMIT %(limit)s;

-- put_brand_keys_ed25519 --
UPDATE brand_keys k SET sealed_ed25519 = v.new
FROM unnest(%(key_0)s::uuid[], %(key_1)s::smallint[], %(old)s::bytea[], %(new)s::bytea[]) AS v(brand_id, key_id, old, new)
WHERE k.brand_id = v.brand_id AND k.key_id = v.key_id AND k.sealed_ed25519 = v.old;

-- page_campaigns_seed --
SELECT id, brand_id, seed_sealed FROM campaigns
WHERE id > %(after_0)s::uuid AND seed_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_campaigns_seed --
UPDATE campaigns c SET seed_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE c.id = v.id AND c.seed_sealed = v.old;

-- page_console_users_totp --
SELECT id, totp_secret_sealed FROM console_users
WHERE id > %(after_0)s::uuid AND totp_secret_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_console_users_totp --
UPDATE console_users u SET totp_secret_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE u.id = v.id AND u.totp_secret_sealed = v.old;

-- page_coupons_code --
SELECT id, brand_id, code_sealed FROM coupons
WHERE id > %(after_0)s::uuid AND code_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_coupons_code --
UPDATE coupons c SET code_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE c.id = v.id AND c.code_sealed = v.old;

-- page_member_import_rows_raw --
SELECT import_id, row_number, raw_sealed FROM member_import_rows
WHERE (import_id, row_number) > (%(after_0)s::uuid, %(after_1)s::integer) AND raw_sealed IS NOT NULL
ORDER BY import_id, row_number LIMIT %(limit)s;

-- put_member_import_rows_raw --
UPDATE member_import_rows r SET raw_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(key_1)s::integer[], %(old)s::bytea[], %(new)s::bytea[])
     AS v(import_id, row_number, old, new)
WHERE r.import_id = v.import_id AND r.row_number = v.row_number AND r.raw_sealed = v.old;

-- page_members_data_key --
SELECT id, data_key_sealed FROM members
WHERE id > %(after_0)s::uuid AND data_key_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_members_data_key --
UPDATE members m SET data_key_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE m.id = v.id AND m.data_key_sealed = v.old;

-- page_members_phone --
-- Members enrolled before members had data keys (migration 0014) have their phone and profile sealed
-- under the master key itself; the others' are under their own data key, which this leaves alone.
SELECT id, brand_id, phone_sealed FROM members
WHERE id > %(after_0)s::uuid AND phone_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_members_phone --
UPDATE members m SET phone_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE m.id = v.id AND m.phone_sealed = v.old;

-- page_members_profile --
SELECT id, brand_id, profile_sealed FROM members
WHERE id > %(after_0)s::uuid AND profile_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_members_profile --
UPDATE members m SET profile_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE m.id = v.id AND m.profile_sealed = v.old;

-- page_member_notes_body --
SELECT id, brand_id, body_sealed FROM member_notes
WHERE id > %(after_0)s::bigint AND body_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_member_notes_body --
UPDATE member_notes n SET body_sealed = v.new
FROM unnest(%(key_0)s::bigint[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE n.id = v.id AND n.body_sealed = v.old;

-- page_prize_claims_address --
SELECT campaign_id, scan_id, address_sealed FROM prize_claims
WHERE (campaign_id, scan_id) > (%(after_0)s::uuid, %(after_1)s::uuid) AND address_sealed IS NOT NULL
ORDER BY campaign_id, scan_id LIMIT %(limit)s;

-- put_prize_claims_address --
UPDATE prize_claims p SET address_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(key_1)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(campaign_id, scan_id, old, new)
WHERE p.campaign_id = v.campaign_id AND p.scan_id = v.scan_id AND p.address_sealed = v.old;

-- page_webhooks_secret --
SELECT id, secret_sealed FROM webhooks
WHERE id > %(after_0)s::uuid AND secret_sealed IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_webhooks_secret --
UPDATE webhooks w SET secret_sealed = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE w.id = v.id AND w.secret_sealed = v.old;

-- Phones' blind indexes are keyed by the master key too: after the values, the indexes written under an
-- older key are written again under the current one (from the phone, opened with the member's key).

-- page_members_phone_index --
SELECT id, phone_index, brand_id, phone_sealed, data_key_sealed FROM members
WHERE id > %(after_0)s::uuid AND phone_index IS NOT NULL
ORDER BY id LIMIT %(limit)s;

-- put_members_phone_index --
UPDATE members m SET phone_index = v.new
FROM unnest(%(key_0)s::uuid[], %(old)s::bytea[], %(new)s::bytea[]) AS v(id, old, new)
WHERE m.id = v.id AND m.phone_index = v.old;

-- page_member_import_rows_phone_index --
-- Rejected and duplicate rows keep their phone's index (erasing that phone's member purges them) and
-- their cells, sealed: the phone is read again from those. Rows whose cells were purged (after 30 days,
-- or by an erasure) keep nothing the index would find: left as they are.
SELECT r.import_id, r.row_number, r.phone_index, i.brand_id, r.raw_sealed
FROM member_import_rows r JOIN member_imports i ON i.id = r.import_id
WHERE (r.import_id, r.row_number) > (%(after_0)s::uuid, %(after_1)s::integer) AND r.phone_index IS NOT NULL
  AND r.raw_sealed IS NOT NULL
ORDER BY r.import_id, r.row_number LIMIT %(limit)s;

-- put_member_import_rows_phone_index --
UPDATE member_import_rows r SET phone_index = v.new
FROM unnest(%(key_0)s::uuid[], %(key_1)s::integer[], %(old)s::bytea[], %(new)s::bytea[])
     AS v(import_id, row_number, old, new)
WHERE r.import_id = v.import_id AND r.row_number = v.row_number AND r.phone_index = v.old;
