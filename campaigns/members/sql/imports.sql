-- start_import --
-- The import of this key, new or resumed; a finished one is returned as it is.
INSERT INTO member_imports (brand_id, import_key, filename, created_by)
VALUES (%(brand_id)s, %(import_key)s, %(filename)s, %(actor)s)
ON CONFLICT (brand_id, import_key) DO UPDATE SET filename = coalesce(member_imports.filename, excluded.filename)
RETURNING id, import_key, filename, status, rows_total, created, merged, duplicates, rejected, points_credited,
          created_by, started_at, finished_at;

-- get_import --
SELECT id, import_key, filename, status, rows_total, created, merged, duplicates, rejected, points_credited,
       created_by, started_at, finished_at
FROM member_imports WHERE id = %(import_id)s AND brand_id = %(brand_id)s;

-- done_rows --
SELECT row_number FROM member_import_rows
WHERE import_id = %(import_id)s AND row_number BETWEEN %(first)s AND %(last)s;

-- existing_members --
-- The members holding these phones. Each phone comes as its index under every configured master key
-- (`aliases`, the current one first) beside its current index (`indexes`), which is what comes back:
-- after a rotation, until `onecode keys reseal` re-indexed them, members may hold an old key's index.
SELECT DISTINCT ON (q.index) m.id, q.index AS phone_index
FROM unnest(%(aliases)s::bytea[], %(indexes)s::bytea[]) WITH ORDINALITY AS q(alias, index, n)
JOIN members m ON m.brand_id = %(brand_id)s AND m.phone_index = q.alias
ORDER BY q.index, q.n;

-- insert_members --
-- New members, enrolled with their phone; a phone enrolled meanwhile by a scan is left to the merge.
INSERT INTO members (id, brand_id, phone_sealed, phone_index, phone_last4, profile_sealed, data_key_sealed,
                     region, birthday_md, enrolled_at)
SELECT id, %(brand_id)s, phone_sealed, phone_index, phone_last4, profile_sealed, data_key_sealed, region,
       birthday_md, %(now)s
FROM unnest(%(ids)s::uuid[], %(phone_sealed)s::bytea[], %(phone_index)s::bytea[], %(phone_last4)s::text[],
            %(profile_sealed)s::bytea[], %(data_key_sealed)s::bytea[], %(region)s::text[],
            %(birthday_md)s::smallint[])
     AS t(id, phone_sealed, phone_index, phone_last4, profile_sealed, data_key_sealed, region, birthday_md)
ON CONFLICT (brand_id, phone_index) WHERE phone_index IS NOT NULL DO NOTHING
RETURNING id;

-- fill_profile --
-- A merge fills what the member lacks and never overwrites what it has.
UPDATE members SET profile_sealed = coalesce(%(profile_sealed)s, profile_sealed),
                   region = coalesce(region, %(region)s), updated_at = %(now)s
WHERE id = %(member_id)s AND brand_id = %(brand_id)s;

-- credit_opening_balances --
-- Once per member ever: the opening balance becomes a lot (usual expiry) and its ledger entry.
WITH credited AS (
    INSERT INTO member_opening_balances (brand_id, member_id, import_id, points)
    SELECT %(brand_id)s, member_id, %(import_id)s, points
    FROM unnest(%(member_ids)s::uuid[], %(points)s::int[]) AS t(member_id, points)
    ON CONFLICT (brand_id, member_id) DO NOTHING
    RETURNING member_id, points
), lots AS (
    INSERT INTO points_lots (brand_id, member_id, amount, remaining, earned_at, expires_at)
    SELECT %(brand_id)s, member_id, points, points, %(now)s, %(expires_at)s FROM credited
    RETURNING id, member_id, amount
), entries AS (
    INSERT INTO points_ledger (brand_id, member_id, amount, kind, reason, source, lot_id, actor, created_at)
    SELECT %(brand_id)s, member_id, amount, 'adjust', 'opening balance imported',
           'import:' || %(import_id)s::text, id, %(actor)s, %(now)s
    FROM lots
    RETURNING amount
)
SELECT coalesce(sum(amount), 0)::bigint AS points FROM entries;

-- record_rows --
INSERT INTO member_import_rows (import_id, row_number, outcome, member_id, phone_index, error, raw_sealed)
SELECT %(import_id)s, row_number, outcome, member_id, phone_index, error, raw_sealed
FROM unnest(%(row_numbers)s::int[], %(outcomes)s::text[], %(member_ids)s::uuid[], %(phone_indexes)s::bytea[],
            %(errors)s::text[], %(raw_sealed)s::bytea[]) AS t(row_number, outcome, member_id, phone_index, error,
                                                               raw_sealed);

-- count_import --
UPDATE member_imports SET
    rows_total = rows_total + %(rows)s, created = created + %(created)s, merged = merged + %(merged)s,
    duplicates = duplicates + %(duplicates)s, rejected = rejected + %(rejected)s,
    points_credited = points_credited + %(points)s
WHERE id = %(import_id)s;

-- finish_import --
UPDATE member_imports SET status = 'done', finished_at = coalesce(finished_at, now())
WHERE id = %(import_id)s
RETURNING id, import_key, filename, status, rows_total, created, merged, duplicates, rejected, points_credited,
          created_by, started_at, finished_at;

-- rejected_rows --
SELECT row_number, outcome, error, raw_sealed FROM member_import_rows
WHERE import_id = %(import_id)s AND outcome IN ('rejected', 'duplicate')
ORDER BY row_number;

-- purge_rejected_cells --
-- Rejected rows keep their original cells (phones, names) for the error file; 30 days after the
-- import they go, so that an import never keeps personal data longer than its correction needs.
UPDATE member_import_rows r SET raw_sealed = NULL
FROM member_imports i
WHERE i.id = r.import_id AND r.raw_sealed IS NOT NULL AND i.finished_at < %(now)s - interval '30 days';
