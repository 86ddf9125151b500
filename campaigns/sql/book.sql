-- live_campaigns --
-- What the scan path's campaign book holds: every campaign that may reward a scan now or soon
-- (a scheduled one starts by itself at starts_at), with its prize pool and sealed seed, and what is
-- left of its budget (in all, and spent on its recent days) as the "sold out" hint.
SELECT c.id, c.brand_id, c.name, c.kind, c.starts_at, c.ends_at, c.time_zone, c.priority, c.stackable,
       c.eligibility, c.points_reward, c.no_prize_weight, c.seed_sealed, c.coupon_template_id,
       t.name AS coupon_name, t.cost_cents AS coupon_cost_cents,
       c.budget_cents - c.spent_cents AS budget_left, c.daily_budget_cents,
       (SELECT coalesce(jsonb_object_agg(d.day, d.spent_cents), '{}'::jsonb) FROM campaign_days d
        WHERE d.campaign_id = c.id AND d.day >= current_date - 1) AS recent_days,
       (SELECT coalesce(jsonb_agg(to_jsonb(p) - 'campaign_id' ORDER BY p.id), '[]'::jsonb)
        FROM prizes p WHERE p.campaign_id = c.id) AS prizes,
       -- A draw is drawn once more for each tier bonus of the brand; the database takes the member's.
       (SELECT coalesce(array_agg(DISTINCT mt.draw_weight_bonus_pct), '{}') FROM member_tiers mt
        WHERE c.kind = 'lucky_draw' AND mt.brand_id = c.brand_id AND mt.draw_weight_bonus_pct > 0)
           AS tier_bonuses
FROM campaigns c
LEFT JOIN coupon_templates t ON t.id = c.coupon_template_id
WHERE c.status IN ('scheduled', 'active') AND c.ends_at > now()
ORDER BY c.brand_id, c.priority DESC, c.id;

-- lock_campaigns --
-- First in a rewarding group commit (after record_scans): the campaigns' rows, in id order, so that
-- concurrent group commits queue per campaign and never deadlock. The award statement that follows
-- takes a fresh snapshot (READ COMMITTED), so it reads stock, budget, caps as the last holder left them.
SELECT id FROM campaigns WHERE id = ANY(%(campaign_ids)s::uuid[]) ORDER BY id FOR UPDATE;

-- award_scan_rewards --
-- Every reward of a group commit's scans in one statement, in its transaction, under the locks above.
-- `items`: one row per (scan, campaign) the in-process campaign book found eligible, with what only the
-- process knows (the prize the sealed seed picked, the campaign-local day, the points). What only the
-- database knows is decided here: the campaign's status and schedule, whether the scan is the code's
-- first, whether the member is new, the one rewarded scan per code, caps, stock and budget.
-- Within a batch, scans are served in arrival order (`seq`) by running counts and sums: the k-th win of a
-- member, the k-th winner of a prize, the running spend. A reward that does not fit is refused, and the
-- ones after it that were counted with it may be refused too: at a limit the batch may give a little
-- less than the sequential answer, never more (the CHECKs on prizes and campaigns are the last guard).
WITH input AS (
    SELECT * FROM json_to_recordset(%(items)s::json) AS t(
        seq integer, scan_id uuid, scanned_at timestamptz, brand_id uuid, key_id smallint, code_index bigint,
        campaign_id uuid, kind text, first_only boolean, members text, points integer, cost_cents bigint,
        drawn_prize_id uuid, day date, expires_at timestamptz, coupon_template_id uuid, coupon_code_hash text,
        coupon_code_sealed text, tiers text[], segment_ids uuid[], cents_per_point bigint, bonus_draws json)
), scanned AS (
    -- Each scan once (stacked campaigns share it): its member, and whether it was the code's first.
    -- A member created by this very transaction is new (now() is the transaction's start). Its tier is
    -- the one the member statistics last gave it (refreshed every minute).
    SELECT sc.id AS scan_id, sc.member_id, sc.verdict = 'genuine_first' AS first, m.created_at = now() AS new_member,
           t.name AS tier_name, coalesce(t.points_multiplier_pct, 100) AS multiplier_pct,
           coalesce(t.draw_weight_bonus_pct, 0) AS bonus_pct
    FROM (SELECT DISTINCT scan_id, scanned_at FROM input) i
    JOIN scans sc ON sc.id = i.scan_id AND sc.scanned_at = i.scanned_at
    JOIN members m ON m.id = sc.member_id
    LEFT JOIN member_stats ms ON ms.member_id = m.id
    LEFT JOIN member_tiers t ON t.brand_id = m.brand_id AND t.rank = coalesce(ms.tier_rank, 0)
), multiplied AS (
    -- A points campaign pays the member's tier multiplier, and its budget pays for the extra points.
    -- A draw takes the outcome drawn with the member's tier bonus, when the book drew one for it.
    SELECT i.*, s.member_id, s.first, s.new_member, s.tier_name,
           CASE WHEN i.kind = 'points' THEN i.points * s.multiplier_pct / 100 ELSE i.points END AS tier_points,
           bd.bonus_pct IS NOT NULL AS bonus_applied, coalesce(bd.bonus_pct, 0) AS weight_bonus_pct,
           bd.drawn_prize_id AS bonus_prize_id, bd.coupon_template_id AS bonus_template_id,
           bd.coupon_code_hash AS bonus_code_hash, bd.coupon_code_sealed AS bonus_code_sealed
    FROM input i
    JOIN scanned s USING (scan_id)
    LEFT JOIN LATERAL (
        SELECT * FROM json_to_recordset(i.bonus_draws) AS b(
            bonus_pct integer, drawn_prize_id uuid, coupon_template_id uuid, coupon_code_hash text,
            coupon_code_sealed text)
        WHERE b.bonus_pct = s.bonus_pct
    ) bd ON s.bonus_pct > 0
), eligible AS (
    SELECT i.seq, i.scan_id, i.scanned_at, i.brand_id, i.key_id, i.code_index, i.campaign_id, i.kind,
           i.tier_points AS points,
           CASE WHEN i.kind = 'points' THEN i.tier_points * i.cents_per_point ELSE i.cost_cents END AS cost_cents,
           CASE WHEN i.bonus_applied THEN i.bonus_prize_id ELSE i.drawn_prize_id END AS drawn_prize_id,
           i.day, i.expires_at,
           CASE WHEN i.bonus_applied THEN i.bonus_template_id ELSE i.coupon_template_id END AS coupon_template_id,
           CASE WHEN i.bonus_applied THEN i.bonus_code_hash ELSE i.coupon_code_hash END AS coupon_code_hash,
           CASE WHEN i.bonus_applied THEN i.bonus_code_sealed ELSE i.coupon_code_sealed END AS coupon_code_sealed,
           i.weight_bonus_pct, i.member_id, i.new_member, c.budget_cents - c.spent_cents AS budget_left, c.daily_budget_cents,
           c.member_daily_cap, c.member_campaign_cap, left('campaign: ' || c.name, 200) AS reason
    FROM multiplied i
    JOIN campaigns c ON c.id = i.campaign_id
    WHERE c.status IN ('scheduled', 'active') AND i.scanned_at >= c.starts_at AND i.scanned_at < c.ends_at
      AND (NOT i.first_only OR i.first)
      AND (i.members = 'any' OR (i.members = 'new') = i.new_member)
      AND (i.tiers IS NULL OR i.tier_name = ANY(i.tiers))
      AND (i.segment_ids IS NULL OR EXISTS (SELECT 1 FROM segment_memberships sm
                                            WHERE sm.segment_id = ANY(i.segment_ids) AND sm.member_id = i.member_id))
      -- A blocked member is never paid, whichever device or token the scan came with.
      AND NOT EXISTS (SELECT 1 FROM blocks b
                      WHERE b.brand_id = i.brand_id AND b.kind = 'member' AND b.lifted_at IS NULL
                        AND b.value = i.member_id::text AND (b.expires_at IS NULL OR b.expires_at > i.scanned_at))
), marked AS (
    -- One rewarded scan per code: stackable campaigns may all reward that scan, and no other.
    UPDATE code_claims cc SET rewarded_scan_id = e.scan_id
    FROM (SELECT DISTINCT ON (brand_id, key_id, code_index) scan_id, brand_id, key_id, code_index
          FROM eligible ORDER BY brand_id, key_id, code_index, seq) e
    WHERE cc.brand_id = e.brand_id AND cc.key_id = e.key_id AND cc.code_index = e.code_index
      AND (cc.rewarded_scan_id IS NULL OR cc.rewarded_scan_id = e.scan_id)
    RETURNING cc.rewarded_scan_id AS scan_id
), counted AS (
    SELECT e.*, (e.kind = 'lucky_draw' AND e.drawn_prize_id IS NULL) AS no_prize,
           coalesce(w.total, 0) AS wins_total, coalesce(w.today, 0) AS wins_today,
           count(*) FILTER (WHERE e.kind <> 'lucky_draw' OR e.drawn_prize_id IS NOT NULL)
               OVER (PARTITION BY e.campaign_id, e.member_id ORDER BY e.seq) AS nth_total,
           count(*) FILTER (WHERE e.kind <> 'lucky_draw' OR e.drawn_prize_id IS NOT NULL)
               OVER (PARTITION BY e.campaign_id, e.member_id, e.day ORDER BY e.seq) AS nth_today
    FROM eligible e
    LEFT JOIN LATERAL (
        SELECT sum(mw.wins) AS total, sum(mw.wins) FILTER (WHERE mw.day = e.day) AS today
        FROM member_wins mw
        WHERE (e.member_campaign_cap IS NOT NULL OR e.member_daily_cap IS NOT NULL)
          AND mw.campaign_id = e.campaign_id AND mw.member_id = e.member_id
    ) w ON true
    -- The marked scans as one array: a join with the UPDATE's output, which the planner cannot size,
    -- rescanned it for every row (milliseconds a batch).
    WHERE e.scan_id = ANY (ARRAY(SELECT scan_id FROM marked))
), capped AS (
    SELECT c.*,
           (c.member_campaign_cap IS NOT NULL AND c.wins_total + c.nth_total > c.member_campaign_cap)
           OR (c.member_daily_cap IS NOT NULL AND c.wins_today + c.nth_today > c.member_daily_cap) AS over_cap
    FROM counted c
), stocked AS (
    SELECT c.*, p.stock - p.awarded AS stock_left, p.awarded AS awarded_before, p.kind AS prize_kind,
           p.points AS prize_points,
           CASE WHEN c.kind <> 'lucky_draw' THEN c.cost_cents ELSE p.cost_cents END AS cost,
           row_number() OVER (PARTITION BY c.drawn_prize_id, c.over_cap OR c.no_prize ORDER BY c.seq) AS nth_prize
    FROM capped c
    LEFT JOIN prizes p ON p.id = c.drawn_prize_id AND p.campaign_id = c.campaign_id
), early AS (
    SELECT s.*,
           CASE WHEN s.no_prize THEN 'no_prize'
                WHEN s.over_cap THEN 'capped'
                WHEN s.kind = 'lucky_draw' AND s.nth_prize > s.stock_left THEN 'sold_out' END AS early_result
    FROM stocked s
), budgeted AS (
    SELECT e.*, coalesce(d.spent_cents, 0) AS day_spent,
           sum(e.cost) FILTER (WHERE e.early_result IS NULL)
               OVER (PARTITION BY e.campaign_id ORDER BY e.seq) AS running_total,
           sum(e.cost) FILTER (WHERE e.early_result IS NULL)
               OVER (PARTITION BY e.campaign_id, e.day ORDER BY e.seq) AS running_day
    FROM early e
    LEFT JOIN campaign_days d ON d.campaign_id = e.campaign_id AND d.day = e.day
), decided AS (
    SELECT b.*,
           coalesce(b.early_result,
                    CASE WHEN b.running_total <= b.budget_left
                              AND (b.daily_budget_cents IS NULL OR b.day_spent + b.running_day <= b.daily_budget_cents)
                         THEN CASE WHEN b.kind <> 'lucky_draw' THEN 'awarded' ELSE 'won' END
                         ELSE 'over_budget' END) AS result
    FROM budgeted b
), given AS (
    SELECT d.*,
           CASE WHEN d.result = 'won'
                THEN d.awarded_before + row_number() OVER (PARTITION BY d.drawn_prize_id, d.result ORDER BY d.seq)
           END AS slot,
           CASE WHEN d.result = 'awarded' THEN d.points
                WHEN d.result = 'won' AND d.prize_kind = 'points' THEN d.prize_points END AS points_given
    FROM decided d
), final AS (
    SELECT g.*,
           CASE WHEN g.points_given IS NOT NULL THEN nextval(pg_get_serial_sequence('points_lots', 'id')) END
               AS lot_id
    FROM given g
), prize_updates AS (
    UPDATE prizes p SET awarded = p.awarded + n.won
    FROM (SELECT drawn_prize_id, count(*) AS won FROM final WHERE result = 'won' GROUP BY drawn_prize_id) n
    WHERE p.id = n.drawn_prize_id
), spend AS (
    UPDATE campaigns c SET spent_cents = c.spent_cents + s.cost
    FROM (SELECT campaign_id, sum(cost) AS cost FROM final WHERE result IN ('awarded', 'won')
          GROUP BY campaign_id) s
    WHERE c.id = s.campaign_id
), days AS (
    INSERT INTO campaign_days AS d (campaign_id, day, spent_cents)
    SELECT campaign_id, day, sum(cost) FROM final WHERE result IN ('awarded', 'won')
    GROUP BY campaign_id, day ORDER BY campaign_id, day
    ON CONFLICT (campaign_id, day) DO UPDATE SET spent_cents = d.spent_cents + excluded.spent_cents
), wins AS (
    -- Only what caps read: a campaign without a member cap keeps no counts (a cap added while it is live
    -- counts them from what it gave: campaigns.count_member_wins).
    INSERT INTO member_wins AS w (campaign_id, member_id, day, wins)
    SELECT campaign_id, member_id, day, count(*) FROM final
    WHERE result IN ('awarded', 'won') AND (member_campaign_cap IS NOT NULL OR member_daily_cap IS NOT NULL)
    GROUP BY campaign_id, member_id, day ORDER BY campaign_id, member_id, day
    ON CONFLICT (campaign_id, member_id, day) DO UPDATE SET wins = w.wins + excluded.wins
), lots AS (
    INSERT INTO points_lots (id, brand_id, member_id, amount, remaining, earned_at, expires_at)
    OVERRIDING SYSTEM VALUE
    SELECT lot_id, brand_id, member_id, points_given, points_given, scanned_at, expires_at
    FROM final WHERE lot_id IS NOT NULL
), entries AS (
    INSERT INTO points_ledger (brand_id, member_id, amount, kind, reason, source, lot_id, created_at)
    SELECT brand_id, member_id, points_given, 'earn', reason, 'scan:' || scan_id, lot_id, scanned_at
    FROM final WHERE lot_id IS NOT NULL
), points_given AS (
    INSERT INTO points_awards (campaign_id, scan_id, member_id, points, cost_cents, day, awarded_at)
    SELECT campaign_id, scan_id, member_id, points_given, cost, day, scanned_at
    FROM final WHERE result = 'awarded' AND kind = 'points'
), coupons_issued AS (
    -- Coupon campaigns and coupon prizes: the code the process made, valid by the template's terms.
    INSERT INTO coupons (brand_id, template_id, member_id, code_hash, code_sealed, campaign_id, scan_id,
                         valid_from, valid_until, usage_limit, issued_at, cost_cents, day)
    SELECT f.brand_id, t.id, f.member_id, decode(f.coupon_code_hash, 'hex'), decode(f.coupon_code_sealed, 'hex'),
           f.campaign_id, f.scan_id, coalesce(t.valid_from, f.scanned_at),
           least(t.valid_until, f.scanned_at + make_interval(days => t.valid_days)), t.usage_limit, f.scanned_at,
           CASE WHEN f.kind = 'coupon' THEN f.cost ELSE 0 END, f.day
    FROM final f JOIN coupon_templates t ON t.id = f.coupon_template_id AND t.brand_id = f.brand_id
    WHERE f.result IN ('awarded', 'won')
), drawn AS (
    INSERT INTO draws (campaign_id, scan_id, member_id, drawn_prize_id, prize_id, slot, result, drawn_at,
                       cost_cents, day, weight_bonus_pct)
    SELECT campaign_id, scan_id, member_id, drawn_prize_id, CASE WHEN result = 'won' THEN drawn_prize_id END,
           slot, result, scanned_at, CASE WHEN result = 'won' THEN cost ELSE 0 END, day, weight_bonus_pct
    FROM final WHERE kind = 'lucky_draw'
), acquired AS (
    -- The campaign behind a member's first scan is its channel of acquisition (the first by priority).
    UPDATE members m SET acquired_campaign_id = f.campaign_id
    FROM (SELECT DISTINCT ON (member_id) member_id, campaign_id FROM final WHERE new_member
          ORDER BY member_id, seq) f
    WHERE m.id = f.member_id AND m.acquired_campaign_id IS NULL
), payouts AS (
    INSERT INTO payout_outbox (brand_id, campaign_id, scan_id, member_id, prize_id, amount_cents)
    SELECT brand_id, campaign_id, scan_id, member_id, drawn_prize_id, cost
    FROM final WHERE result = 'won' AND prize_kind = 'cash'
)
SELECT seq, campaign_id, result, points_given AS points, CASE WHEN result = 'won' THEN drawn_prize_id END AS prize_id,
       slot, member_id, coupon_code_sealed
FROM final;
