-- lock_member_key --
-- The member's sealed data key, locked so that two first writers cannot both create one.
SELECT data_key_sealed, erased_at FROM members
WHERE id = %(member_id)s AND brand_id = %(brand_id)s
FOR UPDATE;

-- set_member_key --
UPDATE members SET data_key_sealed = %(data_key_sealed)s
WHERE id = %(member_id)s AND brand_id = %(brand_id)s AND data_key_sealed IS NULL;

-- get_member_row --
-- Everything a profile view needs; merged-away members are found and point at their successor.
SELECT m.id, m.brand_id, m.phone_sealed, m.phone_last4, m.profile_sealed, m.data_key_sealed, m.region,
       m.attributes, m.consent_marketing_at, m.consent_location_at, m.acquired_product_id,
       m.acquired_batch_id, m.acquired_campaign_id, m.merged_into, m.created_at, m.enrolled_at, m.updated_at, m.erased_at,
       coalesce(s.scans, 0) AS scans, s.last_scan_at, coalesce(s.points_earned, 0) AS points_earned,
       coalesce(s.tier_rank, 0) AS tier_rank, t.name AS tier_name,
       coalesce(s.lifecycle, 'new') AS lifecycle,
       coalesce((SELECT sum(remaining) FROM points_lots l
                 WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at > now()), 0)::bigint
           AS points_balance,
       coalesce((SELECT array_agg(tg.name ORDER BY tg.name) FROM member_tags mt
                 JOIN tags tg ON tg.id = mt.tag_id WHERE mt.member_id = m.id), '{}') AS tags
FROM members m
LEFT JOIN member_stats s ON s.member_id = m.id
LEFT JOIN member_tiers t ON t.brand_id = m.brand_id AND t.rank = coalesce(s.tier_rank, 0)
WHERE m.id = %(member_id)s AND m.brand_id = %(brand_id)s;

-- update_profile --
UPDATE members SET
    profile_sealed = coalesce(%(profile_sealed)s, profile_sealed),
    region = coalesce(%(region)s, region),
    attributes = coalesce(%(attributes)s, attributes),
    updated_at = now()
WHERE id = %(member_id)s AND brand_id = %(brand_id)s AND erased_at IS NULL AND merged_into IS NULL;

-- set_birthday_md --
-- The birthday's month and day in clear, for the birthday event (the profile itself stays sealed).
UPDATE members SET birthday_md = %(birthday_md)s
WHERE id = %(member_id)s AND brand_id = %(brand_id)s AND erased_at IS NULL;

-- attribute_defs --
SELECT name, type, choices FROM member_attribute_defs WHERE brand_id = %(brand_id)s ORDER BY name;

-- attribute_values_misfit --
-- Before a retype: how many members hold a value of the attribute, and which saved segments match one,
-- that the new type (or the new choices) would not accept.
WITH held AS (
    SELECT NULL::text AS segment, attributes -> %(name)s AS value FROM members
    WHERE brand_id = %(brand_id)s AND attributes ? %(name)s
    UNION ALL
    SELECT name, filter -> 'attributes' -> %(name)s FROM segments
    WHERE brand_id = %(brand_id)s AND filter -> 'attributes' ? %(name)s
), misfit AS (
    SELECT segment FROM held
    WHERE NOT CASE %(type)s
        WHEN 'text' THEN jsonb_typeof(value) = 'string' AND length(value #>> '{}') <= 200
        WHEN 'number' THEN jsonb_typeof(value) = 'number'
        WHEN 'boolean' THEN jsonb_typeof(value) = 'boolean'
        WHEN 'date' THEN jsonb_typeof(value) = 'string' AND is_iso_date(value #>> '{}')
        WHEN 'choice' THEN jsonb_typeof(value) = 'string' AND value #>> '{}' = ANY(%(choices)s::text[])
    END
)
SELECT count(*) FILTER (WHERE segment IS NULL) AS members,
       coalesce(array_agg(segment ORDER BY segment) FILTER (WHERE segment IS NOT NULL), '{}') AS segments
FROM misfit;

-- count_attribute_defs --
-- How many the brand defines, and whether this name is one of them (a retype is no new attribute).
SELECT count(*) AS defined, coalesce(bool_or(name = %(name)s), false) AS already_defined
FROM member_attribute_defs WHERE brand_id = %(brand_id)s;

-- put_attribute_def --
INSERT INTO member_attribute_defs (brand_id, name, type, choices)
VALUES (%(brand_id)s, %(name)s, %(type)s, %(choices)s)
ON CONFLICT (brand_id, name) DO UPDATE SET type = excluded.type, choices = excluded.choices
RETURNING name, type, choices;

-- add_note --
INSERT INTO member_notes (brand_id, member_id, body_sealed, author)
VALUES (%(brand_id)s, %(member_id)s, %(body_sealed)s, %(author)s)
RETURNING id, created_at;

-- merged_family --
-- The member and every anonymous member merged into it: their history is the member's history.
SELECT id FROM members
WHERE brand_id = %(brand_id)s AND (id = %(member_id)s OR merged_into = %(member_id)s);

-- timeline --
-- Newest first (time, then kind and ref: several entries share one time, such as a scan's points and draw),
-- after a cursor: entries before `before`, and with `tied`, those at `before` after (`tie_kind`, `tie_ref`).
-- Each source contributes at most `limit` rows, in the same order, so the union stays small.
(SELECT 'scan' AS kind, s.scanned_at AS at, s.id::text AS ref,
        jsonb_build_object('verdict', s.verdict, 'product_id', s.product_id, 'batch_id', s.batch_id,
                           'scan_number', s.scan_number, 'region', s.region) AS detail
 FROM scans s
 WHERE s.member_id = ANY(%(family)s) AND s.brand_id = %(brand_id)s AND s.scanned_at <= %(before)s
   AND (s.scanned_at < %(before)s OR %(tied)s AND ('scan' > %(tie_kind)s
                                    OR 'scan' = %(tie_kind)s AND s.id::text > %(tie_ref)s))
 ORDER BY s.scanned_at DESC, s.id::text LIMIT %(limit)s)
UNION ALL
(SELECT 'points', e.created_at, e.id::text,
        jsonb_build_object('amount', e.amount, 'kind', e.kind, 'reason', e.reason, 'source', e.source,
                           'actor', e.actor)
 FROM points_ledger e
 WHERE e.member_id = ANY(%(family)s) AND e.brand_id = %(brand_id)s AND e.created_at <= %(before)s
   AND (e.created_at < %(before)s OR %(tied)s AND ('points' > %(tie_kind)s
                                    OR 'points' = %(tie_kind)s AND e.id::text > %(tie_ref)s))
 ORDER BY e.created_at DESC, e.id::text LIMIT %(limit)s)
UNION ALL
(SELECT 'coupon', c.issued_at, c.id::text,
        jsonb_build_object('template_id', c.template_id, 'campaign_id', c.campaign_id, 'uses', c.uses,
                           'usage_limit', c.usage_limit, 'valid_until', c.valid_until)
 FROM coupons c
 WHERE c.member_id = ANY(%(family)s) AND c.brand_id = %(brand_id)s AND c.issued_at <= %(before)s
   AND (c.issued_at < %(before)s OR %(tied)s AND ('coupon' > %(tie_kind)s
                                    OR 'coupon' = %(tie_kind)s AND c.id::text > %(tie_ref)s))
 ORDER BY c.issued_at DESC, c.id::text LIMIT %(limit)s)
UNION ALL
(SELECT 'draw', d.drawn_at, d.scan_id::text,
        jsonb_build_object('campaign_id', d.campaign_id, 'result', d.result, 'prize_id', d.prize_id)
 FROM draws d JOIN campaigns cp ON cp.id = d.campaign_id AND cp.brand_id = %(brand_id)s
 WHERE d.member_id = ANY(%(family)s) AND d.drawn_at <= %(before)s
   AND (d.drawn_at < %(before)s OR %(tied)s AND ('draw' > %(tie_kind)s
                                    OR 'draw' = %(tie_kind)s AND d.scan_id::text > %(tie_ref)s))
 ORDER BY d.drawn_at DESC, d.scan_id::text LIMIT %(limit)s)
UNION ALL
(SELECT 'tier', t.changed_at, t.id::text,
        jsonb_build_object('from_rank', t.from_rank, 'to_rank', t.to_rank)
 FROM member_tier_changes t
 WHERE t.member_id = %(member_id)s AND t.brand_id = %(brand_id)s AND t.changed_at <= %(before)s
   AND (t.changed_at < %(before)s OR %(tied)s AND ('tier' > %(tie_kind)s
                                    OR 'tier' = %(tie_kind)s AND t.id::text > %(tie_ref)s))
 ORDER BY t.changed_at DESC, t.id::text LIMIT %(limit)s)
UNION ALL
(SELECT 'note', n.created_at, n.id::text, jsonb_build_object('author', n.author)
 FROM member_notes n
 WHERE n.member_id = %(member_id)s AND n.brand_id = %(brand_id)s AND n.created_at <= %(before)s
   AND (n.created_at < %(before)s OR %(tied)s AND ('note' > %(tie_kind)s
                                    OR 'note' = %(tie_kind)s AND n.id::text > %(tie_ref)s))
 ORDER BY n.created_at DESC, n.id::text LIMIT %(limit)s)
ORDER BY at DESC, kind, ref
LIMIT %(limit)s;

-- note_bodies --
SELECT id, body_sealed FROM member_notes
WHERE member_id = %(member_id)s AND brand_id = %(brand_id)s AND id = ANY(%(ids)s);

-- erase_member --
-- Personal data becomes unreadable (the data key is gone) or is removed; ledgers and scans stay,
-- attached to what is now an anonymous id. In the scan log the member's device ids become pseudonyms
-- under `device_salt`, which is never kept (one device stays one pseudonym, so distinct-device counts
-- hold), and the network and the exact place go (the province stays, for the brand's reports).
WITH devices AS (
    DELETE FROM member_devices WHERE brand_id = %(brand_id)s AND member_id = ANY(%(family)s)
), scan_log AS (
    UPDATE scans SET
        device_id = 'erased-' || left(encode(sha256(convert_to(%(device_salt)s || device_id, 'UTF8')), 'hex'), 24),
        ip_prefix = NULL, lat = NULL, lng = NULL, city = NULL
    WHERE member_id = ANY(%(family)s) AND brand_id = %(brand_id)s
), claimed AS (
    -- The codes the member scanned first, found through its scans (claims are keyed by code only).
    UPDATE code_claims c SET
        first_device_id =
            'erased-' || left(encode(sha256(convert_to(%(device_salt)s || c.first_device_id, 'UTF8')), 'hex'), 24)
    FROM scans s
    WHERE s.member_id = ANY(%(family)s) AND s.brand_id = %(brand_id)s AND s.verdict = 'genuine_first'
      AND c.brand_id = s.brand_id AND c.key_id = s.key_id AND c.code_index = s.code_index
      AND c.first_member_id = ANY(%(family)s)
), notes AS (
    DELETE FROM member_notes WHERE brand_id = %(brand_id)s AND member_id = ANY(%(family)s)
), sms AS (
    DELETE FROM sms_outbox WHERE brand_id = %(brand_id)s AND phone_index = ANY(%(phone_indexes)s::bytea[])
), claims AS (
    UPDATE prize_claims SET address_sealed = NULL
    WHERE brand_id = %(brand_id)s AND member_id = ANY(%(family)s)
), tags AS (
    DELETE FROM member_tags WHERE brand_id = %(brand_id)s AND member_id = ANY(%(family)s)
), import_cells AS (
    -- The original cells (phone, name...) that rejected or duplicate import rows of the member keep:
    -- rows that named the member, or carry its phone (an import before the phone enrolled).
    UPDATE member_import_rows r SET raw_sealed = NULL
    FROM member_imports i
    WHERE i.brand_id = %(brand_id)s AND r.import_id = i.id AND r.raw_sealed IS NOT NULL
      AND (r.member_id = ANY(%(family)s) OR r.phone_index = ANY(%(phone_indexes)s::bytea[]))
)
UPDATE members SET
    phone_sealed = NULL, phone_index = NULL, phone_last4 = NULL, profile_sealed = NULL,
    data_key_sealed = NULL, birthday_md = NULL, region = NULL, attributes = '{}',
    consent_marketing_at = NULL, consent_location_at = NULL, updated_at = now(),
    erased_at = coalesce(erased_at, now())
WHERE brand_id = %(brand_id)s AND id = ANY(%(family)s);

-- profile_sealed --
SELECT profile_sealed FROM members WHERE id = %(member_id)s AND brand_id = %(brand_id)s;

-- phone_index --
SELECT phone_index, phone_sealed FROM members WHERE id = %(member_id)s AND brand_id = %(brand_id)s;

-- retention_brands --
SELECT brand_id FROM member_settings WHERE erase_inactive_after_days IS NOT NULL ORDER BY brand_id;

-- inactive_members --
-- Past the brand's retention: no scan (or, never scanning, no creation) for that long, and no
-- unexpired points (a member with a balance still has something with the brand).
SELECT m.id, m.phone_index FROM members m
JOIN member_settings ms ON ms.brand_id = m.brand_id
LEFT JOIN member_stats s ON s.member_id = m.id
WHERE m.brand_id = %(brand_id)s AND m.erased_at IS NULL AND m.merged_into IS NULL
  AND coalesce(s.last_scan_at, m.created_at) < %(now)s - make_interval(days => ms.erase_inactive_after_days)
  AND NOT EXISTS (SELECT 1 FROM points_lots l
                  WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at > %(now)s)
ORDER BY m.id
LIMIT %(limit)s;

-- families --
SELECT id FROM members WHERE brand_id = %(brand_id)s AND (id = ANY(%(ids)s) OR merged_into = ANY(%(ids)s));

-- export_scans --
SELECT id, scanned_at, verdict, product_id, batch_id, scan_number, device_id, region
FROM scans WHERE member_id = ANY(%(family)s) AND brand_id = %(brand_id)s
ORDER BY scanned_at DESC LIMIT %(limit)s;

-- export_devices --
SELECT device_id, first_seen, last_seen FROM member_devices
WHERE brand_id = %(brand_id)s AND member_id = %(member_id)s ORDER BY first_seen;

-- export_ledger --
SELECT id, amount, kind, reason, source, created_at FROM points_ledger
WHERE member_id = ANY(%(family)s) AND brand_id = %(brand_id)s ORDER BY id;

-- export_notes --
SELECT created_at, author, body_sealed FROM member_notes
WHERE brand_id = %(brand_id)s AND member_id = %(member_id)s ORDER BY id;

-- export_coupons --
SELECT code_sealed, template_id, campaign_id, issued_at, valid_until, uses, usage_limit FROM coupons
WHERE member_id = ANY(%(family)s) AND brand_id = %(brand_id)s ORDER BY issued_at, id;

-- export_draws --
SELECT d.campaign_id, d.scan_id, d.result, d.prize_id, d.drawn_at
FROM draws d JOIN campaigns c ON c.id = d.campaign_id AND c.brand_id = %(brand_id)s
WHERE d.member_id = ANY(%(family)s) ORDER BY d.drawn_at, d.scan_id;

-- export_claims --
SELECT campaign_id, scan_id, status, claimed_at, address_sealed, shipped_at, carrier, tracking_number
FROM prize_claims
WHERE member_id = ANY(%(family)s) AND brand_id = %(brand_id)s AND address_sealed IS NOT NULL
ORDER BY claimed_at, scan_id;

-- find_by_phone --
-- `phone_indexes`: under each configured master key, the current one first (see members.sql).
SELECT id FROM members WHERE brand_id = %(brand_id)s AND phone_index = ANY(%(phone_indexes)s::bytea[])
ORDER BY array_position(%(phone_indexes)s::bytea[], phone_index), created_at
LIMIT 1;

-- merge_state --
SELECT id, merged_into, erased_at FROM members
WHERE brand_id = %(brand_id)s AND id = ANY(%(ids)s)
ORDER BY id
FOR UPDATE;

-- merge_into --
-- A staff merge of a duplicate: devices move, the duplicate points at the member it became, and its
-- phone goes (one phone, one member); the target keeps its own.
WITH moved AS (
    UPDATE member_devices SET member_id = %(target_id)s
    WHERE brand_id = %(brand_id)s AND member_id = %(source_id)s
), followers AS (
    UPDATE members SET merged_into = %(target_id)s
    WHERE brand_id = %(brand_id)s AND merged_into = %(source_id)s
)
UPDATE members SET merged_into = %(target_id)s, phone_sealed = NULL, phone_index = NULL,
                   phone_last4 = NULL, updated_at = now()
WHERE id = %(source_id)s AND brand_id = %(brand_id)s;
