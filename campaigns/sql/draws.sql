-- insert_campaign --
INSERT INTO campaigns (brand_id, name, kind, status, starts_at, ends_at, time_zone, budget_cents,
                       daily_budget_cents, member_daily_cap, member_campaign_cap, no_prize_weight,
                       seed_sealed, seed_hash)
VALUES (%(brand_id)s, %(name)s, 'lucky_draw', %(status)s, %(starts_at)s, %(ends_at)s, %(time_zone)s, %(budget_cents)s,
        %(daily_budget_cents)s, %(member_daily_cap)s, %(member_campaign_cap)s, %(no_prize_weight)s,
        %(seed_sealed)s, %(seed_hash)s)
RETURNING id;

-- insert_prize --
INSERT INTO prizes (campaign_id, name, kind, weight, stock, cost_cents, points)
VALUES (%(campaign_id)s, %(name)s, %(kind)s, %(weight)s, %(stock)s, %(cost_cents)s, %(points)s)
RETURNING id;

-- get_draw_setup --
SELECT c.id, c.brand_id, c.no_prize_weight, c.seed_sealed, c.seed_hash, c.time_zone,
       c.member_daily_cap, c.member_campaign_cap, c.daily_budget_cents
FROM campaigns c WHERE c.id = %(campaign_id)s;

-- list_prizes --
SELECT id, name, kind, weight, stock, awarded, cost_cents, points FROM prizes
WHERE campaign_id = %(campaign_id)s ORDER BY id;

-- count_member_wins --
SELECT coalesce(sum(wins), 0)::integer AS total,
       coalesce(sum(wins) FILTER (WHERE day = %(day)s), 0)::integer AS today
FROM member_wins WHERE campaign_id = %(campaign_id)s AND member_id = %(member_id)s;

-- add_member_win --
INSERT INTO member_wins (campaign_id, member_id, day, wins) VALUES (%(campaign_id)s, %(member_id)s, %(day)s, 1)
ON CONFLICT (campaign_id, member_id, day) DO UPDATE SET wins = member_wins.wins + 1;

-- lock_member_wins --
-- Serialises one member's draws in one campaign, so caps hold under concurrency.
SELECT pg_advisory_xact_lock(hashtextextended(%(campaign_id)s::text || %(member_id)s::text, 0));

-- take_prize_slot --
-- The slot is the prize's new `awarded` count; no row when the stock is gone.
UPDATE prizes SET awarded = awarded + 1
WHERE id = %(prize_id)s AND awarded < stock
RETURNING awarded AS slot, cost_cents;

-- spend_budget --
UPDATE campaigns SET spent_cents = spent_cents + %(cost)s
WHERE id = %(campaign_id)s AND spent_cents + %(cost)s <= budget_cents
RETURNING spent_cents;

-- spend_daily_budget --
INSERT INTO campaign_days AS d (campaign_id, day, spent_cents) VALUES (%(campaign_id)s, %(day)s, %(cost)s)
ON CONFLICT (campaign_id, day) DO UPDATE SET spent_cents = d.spent_cents + %(cost)s
WHERE d.spent_cents + %(cost)s <= %(daily_budget)s
RETURNING spent_cents;

-- insert_draw --
INSERT INTO draws (campaign_id, scan_id, member_id, drawn_prize_id, prize_id, slot, result, drawn_at)
VALUES (%(campaign_id)s, %(scan_id)s, %(member_id)s, %(drawn_prize_id)s, %(prize_id)s, %(slot)s, %(result)s,
        %(drawn_at)s);

-- list_draws --
SELECT scan_id, drawn_prize_id FROM draws WHERE campaign_id = %(campaign_id)s ORDER BY scan_id;

-- reveal_seed --
UPDATE campaigns SET seed_revealed = %(seed)s, status = 'ended' WHERE id = %(campaign_id)s;

-- get_draw_audit --
-- What `onecode campaign verify-draws` needs before recomputing: whether the seed is out, and how many draws.
SELECT c.id, c.kind, c.status, c.seed_revealed,
       (SELECT count(*) FROM draws d WHERE d.campaign_id = c.id)::integer AS draws
FROM campaigns c WHERE c.id = %(campaign_id)s;
