-- insert_prize --
INSERT INTO prizes (campaign_id, name, kind, weight, stock, cost_cents, points, coupon_template_id)
VALUES (%(campaign_id)s, %(name)s, %(kind)s, %(weight)s, %(stock)s, %(cost_cents)s, %(points)s,
        %(coupon_template_id)s)
RETURNING id;

-- delete_draft_prizes --
-- A draft's pool is replaced whole when it is edited; a draft has drawn nothing, so nothing refers to it.
DELETE FROM prizes p USING campaigns c
WHERE p.campaign_id = c.id AND c.id = %(campaign_id)s AND c.status = 'draft';

-- get_draw_setup --
SELECT c.id, c.brand_id, c.no_prize_weight, c.seed_sealed, c.seed_hash
FROM campaigns c WHERE c.id = %(campaign_id)s;

-- list_prizes --
SELECT id, name, kind, weight, stock, awarded, cost_cents, points, coupon_template_id FROM prizes
WHERE campaign_id = %(campaign_id)s ORDER BY id;

-- list_draws --
SELECT scan_id, drawn_prize_id, weight_bonus_pct FROM draws WHERE campaign_id = %(campaign_id)s ORDER BY scan_id;

-- reveal_seed --
UPDATE campaigns SET seed_revealed = %(seed)s, status = 'ended' WHERE id = %(campaign_id)s;

-- get_draw_audit --
-- What `onecode campaign verify-draws` needs before recomputing: whether the seed is out, and how many draws.
SELECT c.id, c.kind, c.status, c.seed_revealed,
       (SELECT count(*) FROM draws d WHERE d.campaign_id = c.id)::integer AS draws
FROM campaigns c WHERE c.id = %(campaign_id)s;
