-- insert_campaign --
-- A new campaign is always a draft: no seed yet, nothing spent.
INSERT INTO campaigns (brand_id, name, kind, status, starts_at, ends_at, time_zone, budget_cents,
                       daily_budget_cents, member_daily_cap, member_campaign_cap, no_prize_weight,
                       eligibility, points_reward, priority, stackable, coupon_template_id)
VALUES (%(brand_id)s, %(name)s, %(kind)s, 'draft', %(starts_at)s, %(ends_at)s, %(time_zone)s, %(budget_cents)s,
        %(daily_budget_cents)s, %(member_daily_cap)s, %(member_campaign_cap)s, %(no_prize_weight)s,
        %(eligibility)s, %(points_reward)s, %(priority)s, %(stackable)s, %(coupon_template_id)s)
RETURNING id;

-- get_campaign --
SELECT c.id, c.brand_id, c.name, c.kind, c.status, c.starts_at, c.ends_at, c.time_zone, c.budget_cents,
       c.spent_cents, c.daily_budget_cents, c.member_daily_cap, c.member_campaign_cap, c.priority, c.stackable,
       c.eligibility, c.points_reward, c.coupon_template_id, c.no_prize_weight,
       encode(c.seed_hash, 'hex') AS seed_hash, encode(c.seed_revealed, 'hex') AS seed_revealed,
       c.created_at, c.updated_at,
       (SELECT coalesce(jsonb_agg(to_jsonb(p) - 'campaign_id' ORDER BY p.id), '[]'::jsonb)
        FROM prizes p WHERE p.campaign_id = c.id) AS prizes
FROM campaigns c
WHERE c.brand_id = %(brand_id)s AND c.id = %(campaign_id)s;

-- list_campaigns --
-- Keyset pagination by id, scoped to the brand; `status` filters when given.
SELECT c.id, c.brand_id, c.name, c.kind, c.status, c.starts_at, c.ends_at, c.time_zone, c.budget_cents,
       c.spent_cents, c.daily_budget_cents, c.member_daily_cap, c.member_campaign_cap, c.priority, c.stackable,
       c.eligibility, c.points_reward, c.coupon_template_id, c.no_prize_weight,
       encode(c.seed_hash, 'hex') AS seed_hash, encode(c.seed_revealed, 'hex') AS seed_revealed,
       c.created_at, c.updated_at,
       (SELECT coalesce(jsonb_agg(to_jsonb(p) - 'campaign_id' ORDER BY p.id), '[]'::jsonb)
        FROM prizes p WHERE p.campaign_id = c.id) AS prizes
FROM campaigns c
WHERE c.brand_id = %(brand_id)s
  AND (%(after)s::uuid IS NULL OR c.id > %(after)s)
  AND (%(status)s::text IS NULL OR c.status = %(status)s)
ORDER BY c.id
LIMIT %(limit)s;

-- lock_campaign --
-- Serialises edits and transitions of one campaign: the status checked is the status changed.
SELECT status FROM campaigns WHERE brand_id = %(brand_id)s AND id = %(campaign_id)s FOR UPDATE;

-- update_campaign --
UPDATE campaigns
SET name = %(name)s, starts_at = %(starts_at)s, ends_at = %(ends_at)s, time_zone = %(time_zone)s,
    budget_cents = %(budget_cents)s, daily_budget_cents = %(daily_budget_cents)s,
    member_daily_cap = %(member_daily_cap)s, member_campaign_cap = %(member_campaign_cap)s,
    no_prize_weight = %(no_prize_weight)s, eligibility = %(eligibility)s, points_reward = %(points_reward)s,
    priority = %(priority)s, stackable = %(stackable)s, coupon_template_id = %(coupon_template_id)s,
    updated_at = now()
WHERE brand_id = %(brand_id)s AND id = %(campaign_id)s
RETURNING id;

-- transition_campaign --
-- Conditional on the current status, so a concurrent step cannot skip the lifecycle. A seed, once
-- committed, is kept: scheduling then activating a draw publishes one hash only.
UPDATE campaigns
SET status = %(to_status)s, updated_at = now(),
    seed_sealed = coalesce(seed_sealed, %(seed_sealed)s), seed_hash = coalesce(seed_hash, %(seed_hash)s)
WHERE brand_id = %(brand_id)s AND id = %(campaign_id)s AND status = ANY(%(from_statuses)s)
RETURNING id;

-- count_brand_segments --
SELECT count(*) AS n FROM segments WHERE brand_id = %(brand_id)s AND id = ANY(%(ids)s);

-- brand_tier_names --
SELECT name FROM member_tiers WHERE brand_id = %(brand_id)s;

-- count_brand_batches --
SELECT count(*) AS n FROM batches WHERE brand_id = %(brand_id)s AND id = ANY(%(ids)s);

-- forget_member_wins --
DELETE FROM member_wins WHERE campaign_id = %(campaign_id)s;

-- count_member_wins --
-- A campaign's rewards per member and day, counted from what it gave. The scan path keeps these counts
-- only while the campaign has a member cap (caps are what read them), so a cap added to a live campaign
-- recounts them here (after forget_member_wins, under the campaign's lock, which awards take too).
INSERT INTO member_wins (campaign_id, member_id, day, wins)
SELECT %(campaign_id)s, member_id, day, count(*)
FROM (
    SELECT member_id, day FROM points_awards WHERE campaign_id = %(campaign_id)s
    UNION ALL
    SELECT member_id, day FROM draws WHERE campaign_id = %(campaign_id)s AND result = 'won'
    UNION ALL
    SELECT co.member_id, co.day
    FROM coupons co JOIN campaigns c ON c.id = co.campaign_id AND c.kind = 'coupon'
    WHERE co.campaign_id = %(campaign_id)s AND co.member_id IS NOT NULL
) given
GROUP BY member_id, day;

-- top_up_prize --
-- Stock only grows here; weights stay as committed, so every past draw still verifies.
UPDATE prizes p SET stock = p.stock + %(add)s
FROM campaigns c
WHERE p.id = %(prize_id)s AND p.campaign_id = c.id AND c.id = %(campaign_id)s AND c.brand_id = %(brand_id)s
RETURNING p.id, p.name, p.kind, p.weight, p.stock, p.awarded, p.cost_cents, p.points, p.coupon_template_id;

-- campaign_id_by_name --
-- Names are not unique; the oldest wins, so a seed that looks a campaign up by name always finds the same one.
SELECT id FROM campaigns WHERE brand_id = %(brand_id)s AND name = %(name)s ORDER BY created_at, id LIMIT 1;

-- due_transitions --
-- Campaigns whose schedule says they should have started or ended by now (see advance_schedules).
SELECT brand_id, id, CASE WHEN ends_at <= %(now)s THEN 'end' ELSE 'activate' END AS action
FROM campaigns
WHERE (status = 'scheduled' AND starts_at <= %(now)s)
   OR (status IN ('scheduled', 'active', 'paused') AND ends_at <= %(now)s)
ORDER BY id
LIMIT 100;

-- rivals --
-- Other live campaigns of the brand that could claim the same scans with nothing to rank them: the same
-- priority, not both stackable (a campaign that rewards alone must be ranked), schedules that overlap. Whether their products and batches meet is
-- decided in Python (campaigns.campaigns._check_overlap).
SELECT id, name, eligibility FROM campaigns
WHERE brand_id = %(brand_id)s AND id <> %(campaign_id)s AND status IN ('scheduled', 'active', 'paused')
  AND priority = %(priority)s AND NOT (stackable AND %(stackable)s)
  AND starts_at < %(ends_at)s AND %(starts_at)s < ends_at
ORDER BY id
LIMIT 100;
