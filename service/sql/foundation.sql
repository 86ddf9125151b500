-- insert_brand --
-- A new tenant; short_code collisions surface as a unique violation and the caller retries.
INSERT INTO brands (slug, name, short_code, is_loadtest)
VALUES (%(slug)s, %(name)s, %(short_code)s, %(is_loadtest)s)
RETURNING id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at;

-- get_brand --
SELECT id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at FROM brands WHERE id = %(brand_id)s;

-- rename_brand --
-- The display name only: the slug and short code may be printed on codes and in integrations.
UPDATE brands SET name = %(name)s WHERE id = %(brand_id)s
RETURNING id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at;

-- set_gs1_company_prefixes --
UPDATE brands SET gs1_company_prefixes = %(prefixes)s::text[] WHERE id = %(brand_id)s
RETURNING id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at;

-- lock_gs1_company_prefixes --
-- Claims are compared with the other brands' claims and products: one claim at a time (shared by
-- product registrations, which read the claims).
SELECT pg_advisory_xact_lock(hashtext('onecode.gs1_company_prefixes'));

-- gs1_prefix_overlaps --
-- Another brand's prefixes that one of these begins, or that begins one of these.
SELECT theirs FROM brands b CROSS JOIN unnest(b.gs1_company_prefixes) AS theirs
CROSS JOIN unnest(%(prefixes)s::text[]) AS mine
WHERE b.id <> %(brand_id)s AND (starts_with(theirs, mine) OR starts_with(mine, theirs))
ORDER BY theirs;

-- foreign_products_under --
-- Products of other brands whose GTIN falls under one of these prefixes (indicator digit aside).
SELECT count(*) AS products FROM products p CROSS JOIN unnest(%(prefixes)s::text[]) AS mine
WHERE p.brand_id <> %(brand_id)s AND starts_with(substr(p.gtin, 2), mine);

-- lock_brand_definitions --
-- One change at a time to what a brand's definitions name each other by (tags, segments, products, tiers,
-- custom attributes, campaign rules), until the transaction ends: a deletion's "is it still named?"
-- check and a new rule naming the same thing cannot pass each other; nor can two creations counting
-- against one of the brand's caps (tags, segments, attributes, webhooks, console accounts). These are
-- rare admin writes.
SELECT pg_advisory_xact_lock(hashtextextended('onecode.definitions:' || %(brand_id)s::text, 0));

-- get_brand_by_slug --
SELECT id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at FROM brands WHERE slug = %(slug)s;

-- list_brands --
-- Keyset pagination by id; `only_brand_id` limits a tenant to itself.
SELECT id, slug, name, short_code, is_loadtest, gs1_company_prefixes, created_at FROM brands
WHERE (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
  AND (%(only_brand_id)s::uuid IS NULL OR id = %(only_brand_id)s::uuid)
ORDER BY id
LIMIT %(limit)s;

-- insert_token --
INSERT INTO api_tokens (brand_id, role, distributor_id, name, token_hash, expires_at)
VALUES (%(brand_id)s, %(role)s, %(distributor_id)s, %(name)s, %(token_hash)s, %(expires_at)s)
RETURNING id, brand_id, role, distributor_id, name, created_at, expires_at, revoked_at, last_used_at;

-- authenticate_token --
-- Valid tokens only; last_used_at is refreshed at most once a minute to keep reads cheap.
WITH found AS (
    SELECT id, brand_id, role, distributor_id, last_used_at FROM api_tokens
    WHERE token_hash = %(token_hash)s AND revoked_at IS NULL AND expires_at > now()
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
    FROM found
    WHERE api_tokens.id = found.id
      AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
)
SELECT id AS token_id, brand_id, role, distributor_id FROM found;

-- get_token --
SELECT id, brand_id, role, distributor_id, name, created_at, expires_at, revoked_at, last_used_at
FROM api_tokens WHERE id = %(token_id)s AND brand_id IS NOT DISTINCT FROM %(brand_id)s;

-- list_tokens --
SELECT id, brand_id, role, distributor_id, name, created_at, expires_at, revoked_at, last_used_at
FROM api_tokens
WHERE brand_id IS NOT DISTINCT FROM %(brand_id)s
  AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
ORDER BY id
LIMIT %(limit)s;

-- revoke_token --
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(token_id)s AND brand_id IS NOT DISTINCT FROM %(brand_id)s
RETURNING id, brand_id, role, distributor_id, name, created_at, expires_at, revoked_at, last_used_at;

-- lock_audit_chain --
-- Appends are serialised so that each entry links to exactly one predecessor.
SELECT pg_advisory_xact_lock(3141592653);

-- append_audit --
WITH prev AS (
    SELECT coalesce((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '\x'::bytea) AS hash
), entry AS (
    SELECT clock_timestamp() AS at
)
INSERT INTO audit_log (brand_id, actor, action, object_type, object_id, before, after, at, prev_hash, hash)
SELECT %(brand_id)s, %(actor)s, %(action)s, %(object_type)s, %(object_id)s, %(before)s, %(after)s,
       entry.at, prev.hash,
       audit_entry_hash(prev.hash, %(brand_id)s, %(actor)s, %(action)s, %(object_type)s, %(object_id)s,
                        %(before)s, %(after)s, entry.at)
FROM prev, entry
RETURNING id;

-- list_audit --
SELECT id, brand_id, actor, action, object_type, object_id, before, after, at, encode(hash, 'hex') AS hash
FROM audit_log
WHERE (%(brand_id)s::uuid IS NULL OR brand_id = %(brand_id)s::uuid)
  AND (%(after)s::bigint IS NULL OR id > %(after)s::bigint)
  AND (%(action)s::text IS NULL OR action = %(action)s::text)
  AND (%(object_type)s::text IS NULL OR object_type = %(object_type)s::text)
ORDER BY id
LIMIT %(limit)s;

-- verify_audit_chain --
-- The first entry whose stored hash or back-link disagrees with a recomputation; none means intact.
SELECT count(*) AS checked,
       min(id) FILTER (WHERE NOT ok) AS first_bad_id
FROM (
    SELECT id,
           hash = audit_entry_hash(prev_hash, brand_id, actor, action, object_type, object_id,
                                   before, after, at)
           AND prev_hash = coalesce(lag(hash) OVER (ORDER BY id), '\x'::bytea) AS ok
    FROM audit_log
) AS entries;
