-- count_tags --
SELECT count(*) AS tags, count(*) FILTER (WHERE kind = 'rule') AS rule_tags FROM tags WHERE brand_id = %(brand_id)s;

-- create_tag --
INSERT INTO tags (brand_id, name, kind, rule) VALUES (%(brand_id)s, %(name)s, %(kind)s, %(rule)s)
ON CONFLICT (brand_id, name) DO NOTHING
RETURNING id, name, kind, rule, created_at;

-- list_tags --
-- By name (unique in a brand), keyset by name: `after` is the last name of the previous page, which
-- still places the page when that tag was deleted in between.
SELECT t.id, t.name, t.kind, t.rule, t.created_at,
       (SELECT count(*) FROM member_tags mt WHERE mt.tag_id = t.id) AS members
FROM tags t
WHERE t.brand_id = %(brand_id)s AND (%(after)s::text IS NULL OR t.name > %(after)s::text)
ORDER BY t.name LIMIT %(limit)s;

-- tag_by_name --
SELECT id, name, kind, rule, created_at FROM tags WHERE brand_id = %(brand_id)s AND name = %(name)s;

-- segments_using_tag --
-- Saved segments whose filter names the tag (a segment naming an unknown tag no longer counts).
SELECT name FROM segments
WHERE brand_id = %(brand_id)s
  AND (filter -> 'tags_all' ? %(name)s OR filter -> 'tags_any' ? %(name)s OR filter -> 'tags_none' ? %(name)s)
ORDER BY name;

-- delete_tag --
DELETE FROM tags WHERE brand_id = %(brand_id)s AND name = %(name)s RETURNING id;

-- add_member_tag --
-- Idempotent: tagging twice keeps the first time and author. The member counts as touched, so that the
-- next refresh updates the segments that filter on the tag.
WITH member AS (
    UPDATE members SET updated_at = now()
    WHERE id = %(member_id)s AND brand_id = %(brand_id)s AND erased_at IS NULL
    RETURNING id
), added AS (
    INSERT INTO member_tags (brand_id, tag_id, member_id, added_by)
    SELECT %(brand_id)s, %(tag_id)s, id, %(actor)s FROM member
    ON CONFLICT (tag_id, member_id) DO NOTHING
)
SELECT id FROM member;

-- remove_member_tag --
WITH touched AS (
    UPDATE members SET updated_at = now() WHERE id = %(member_id)s AND brand_id = %(brand_id)s
)
DELETE FROM member_tags WHERE brand_id = %(brand_id)s AND tag_id = %(tag_id)s AND member_id = %(member_id)s;

-- rule_tags --
SELECT id, brand_id, rule FROM tags WHERE kind = 'rule' AND brand_id = ANY(%(brand_ids)s);

-- apply_rule_tag --
-- Recompute one rule tag for the given members (all of the brand's when `member_ids` is null):
-- add where the rule holds, remove where it no longer does.
WITH candidates AS (
    SELECT s.member_id,
           (coalesce(%(min_scans)s::int, 0) <= (
                SELECT count(*) FROM scans sc
                WHERE sc.member_id = s.member_id AND sc.brand_id = s.brand_id
                  AND sc.scanned_at >= %(now)s - make_interval(days => %(within_days)s)
                  AND sc.scanned_at < %(now)s
                  AND sc.verdict IN ('genuine_first', 'genuine_repeat')
                  AND (%(product_ids)s::uuid[] IS NULL OR sc.product_id = ANY(%(product_ids)s::uuid[])))
            OR %(min_scans)s::int IS NULL)
           AND (%(min_points_earned)s::bigint IS NULL OR s.points_earned >= %(min_points_earned)s)
           AND (%(min_points_spent)s::bigint IS NULL OR s.points_spent >= %(min_points_spent)s)
           AND (%(region)s::text IS NULL OR coalesce(m.region, s.last_region) = %(region)s
                OR coalesce(m.region, s.last_region) LIKE %(region)s || '-%%')
           AS holds
    FROM member_stats s JOIN members m ON m.id = s.member_id AND m.erased_at IS NULL
    WHERE s.brand_id = %(brand_id)s
      AND (%(member_ids)s::uuid[] IS NULL OR s.member_id = ANY(%(member_ids)s::uuid[]))
), added AS (
    INSERT INTO member_tags (brand_id, tag_id, member_id, added_by)
    SELECT %(brand_id)s, %(tag_id)s, member_id, 'rule' FROM candidates WHERE holds
    ON CONFLICT (tag_id, member_id) DO NOTHING
    RETURNING 1
), removed AS (
    DELETE FROM member_tags mt USING candidates c
    WHERE mt.tag_id = %(tag_id)s AND mt.member_id = c.member_id AND NOT c.holds
    RETURNING 1
)
SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM removed) AS removed;
