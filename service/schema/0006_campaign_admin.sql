-- Campaigns configured by marketers: lifecycle, eligibility rules, priority/stacking and reward config.

-- The API names the draw kind `lucky_draw`; existing draw campaigns are renamed with the constraint.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_kind_check;
UPDATE campaigns SET kind = 'lucky_draw' WHERE kind = 'draw';
ALTER TABLE campaigns ADD CONSTRAINT campaigns_kind_check CHECK (kind IN ('points', 'lucky_draw'));

-- A draft has no seed yet: a lucky draw commits to one when it is scheduled or activated.
ALTER TABLE campaigns ALTER COLUMN seed_sealed DROP NOT NULL;
ALTER TABLE campaigns ALTER COLUMN seed_hash DROP NOT NULL;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_draw_seed_committed
    CHECK (kind <> 'lucky_draw' OR status = 'draft' OR (seed_sealed IS NOT NULL AND seed_hash IS NOT NULL));

ALTER TABLE campaigns
    -- Validated by campaigns.campaigns.Eligibility; an empty list in a rule means "no restriction".
    ADD COLUMN eligibility    jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Validated by campaigns.campaigns.PointsReward; set for points campaigns only.
    ADD COLUMN points_reward  jsonb,
    -- Higher first; a non-stackable campaign rewards a scan alone.
    ADD COLUMN priority       integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    ADD COLUMN stackable      boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT campaigns_points_reward_object
        CHECK (points_reward IS NULL OR jsonb_typeof(points_reward) = 'object'),
    ADD CONSTRAINT campaigns_eligibility_object CHECK (jsonb_typeof(eligibility) = 'object');

-- NOT VALID: rows written before this migration were never checked for it; new writes are.
ALTER TABLE campaigns ADD CONSTRAINT campaigns_daily_within_total
    CHECK (daily_budget_cents IS NULL OR daily_budget_cents <= budget_cents) NOT VALID;

-- The admin list pages by id within a brand: the UNIQUE (brand_id, id) index serves it.
