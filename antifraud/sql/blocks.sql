-- insert_block --
INSERT INTO blocks (brand_id, kind, value, reason, expires_at, created_by)
VALUES (%(brand_id)s, %(kind)s, %(value)s, %(reason)s, %(expires_at)s, %(actor)s)
RETURNING id, brand_id, kind, value, reason, expires_at, created_by, created_at, lifted_by, lifted_at;

-- list_blocks --
SELECT id, brand_id, kind, value, reason, expires_at, created_by, created_at, lifted_by, lifted_at
FROM blocks
WHERE brand_id = %(brand_id)s AND (%(after)s::bigint IS NULL OR id > %(after)s)
  AND (NOT %(active_only)s OR (lifted_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s)))
ORDER BY id LIMIT %(limit)s;

-- lift_block --
UPDATE blocks SET lifted_at = coalesce(lifted_at, %(now)s), lifted_by = coalesce(lifted_by, %(actor)s)
WHERE brand_id = %(brand_id)s AND id = %(block_id)s
RETURNING id, brand_id, kind, value, reason, expires_at, created_by, created_at, lifted_by, lifted_at;

-- active_block --
-- The block already in force on this source, if any (a second one would only hide which to lift).
SELECT id FROM blocks
WHERE brand_id = %(brand_id)s AND kind = %(kind)s AND value = %(value)s AND lifted_at IS NULL
  AND (expires_at IS NULL OR expires_at > %(now)s)
LIMIT 1;

-- member_of_brand --
SELECT 1 FROM members WHERE id = %(member_id)s AND brand_id = %(brand_id)s;
