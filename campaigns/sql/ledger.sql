-- insert_lot --
INSERT INTO points_lots (brand_id, member_id, amount, remaining, earned_at, expires_at)
VALUES (%(brand_id)s, %(member_id)s, %(amount)s, %(amount)s, %(now)s, %(expires_at)s)
RETURNING id;

-- insert_entry --
INSERT INTO points_ledger (brand_id, member_id, amount, kind, reason, source, lot_id, actor, created_at)
VALUES (%(brand_id)s, %(member_id)s, %(amount)s, %(kind)s, %(reason)s, %(source)s, %(lot_id)s, %(actor)s, %(now)s)
RETURNING id;

-- open_lots_for_update --
-- FIFO: the lot expiring first is spent first; locked so concurrent spends of one member queue up.
SELECT id, remaining FROM points_lots
WHERE member_id = %(member_id)s AND brand_id = %(brand_id)s AND remaining > 0 AND expires_at > %(now)s
ORDER BY expires_at, id
FOR UPDATE;

-- open_lots_to_move --
-- Every open lot of a member being merged into another, with its expiry (kept by the move).
SELECT id, remaining, expires_at FROM points_lots
WHERE member_id = %(member_id)s AND brand_id = %(brand_id)s AND remaining > 0 AND expires_at > %(now)s
ORDER BY expires_at, id
FOR UPDATE;

-- take_from_lot --
UPDATE points_lots SET remaining = remaining - %(take)s WHERE id = %(lot_id)s;

-- expired_lots_for_update --
SELECT id, brand_id, member_id, remaining FROM points_lots
WHERE remaining > 0 AND expires_at <= %(now)s
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- balance --
SELECT coalesce(sum(remaining) FILTER (WHERE expires_at > %(now)s), 0)::integer AS balance,
       coalesce(sum(remaining) FILTER (WHERE expires_at > %(now)s AND expires_at <= %(soon)s), 0)::integer AS expiring_soon
FROM points_lots WHERE member_id = %(member_id)s AND brand_id = %(brand_id)s;

-- ledger_page --
SELECT id, amount, kind, reason, source, lot_id, actor, created_at FROM points_ledger
WHERE member_id = %(member_id)s AND brand_id = %(brand_id)s AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC LIMIT %(limit)s;
