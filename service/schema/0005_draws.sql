-- Lucky draws that never oversell: stock, budget and caps are enforced here, not in Redis.

CREATE TABLE campaigns (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id              uuid NOT NULL REFERENCES brands (id),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind                  text NOT NULL CHECK (kind IN ('points', 'draw')),
    status                text NOT NULL DEFAULT 'draft'
                              CHECK (status IN ('draft', 'scheduled', 'active', 'paused', 'ended')),
    starts_at             timestamptz NOT NULL,
    ends_at               timestamptz NOT NULL,
    time_zone             text NOT NULL DEFAULT 'Asia/Shanghai',
    budget_cents          bigint NOT NULL CHECK (budget_cents >= 0),
    spent_cents           bigint NOT NULL DEFAULT 0,
    daily_budget_cents    bigint CHECK (daily_budget_cents >= 0),
    member_daily_cap      integer CHECK (member_daily_cap >= 1),
    member_campaign_cap   integer CHECK (member_campaign_cap >= 1),
    -- Weight of "no prize" beside the prizes' weights.
    no_prize_weight       integer NOT NULL DEFAULT 0 CHECK (no_prize_weight >= 0),
    -- Auditable draws: the seed is sealed until the end; its SHA-256 is published at the start.
    seed_sealed           bytea NOT NULL,
    seed_hash             bytea NOT NULL,
    seed_revealed         bytea,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CONSTRAINT campaigns_within_budget CHECK (spent_cents BETWEEN 0 AND budget_cents),
    UNIQUE (brand_id, id)
);

CREATE TABLE prizes (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id  uuid NOT NULL REFERENCES campaigns (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('physical', 'coupon', 'points', 'cash')),
    weight       integer NOT NULL CHECK (weight >= 0),
    stock        integer NOT NULL CHECK (stock >= 0),
    awarded      integer NOT NULL DEFAULT 0,
    cost_cents   bigint NOT NULL CHECK (cost_cents >= 0),
    points       integer CHECK (points > 0),
    CONSTRAINT prizes_within_stock CHECK (awarded BETWEEN 0 AND stock)
);
CREATE INDEX prizes_campaign ON prizes (campaign_id);

CREATE TABLE campaign_days (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id),
    day          date NOT NULL,
    spent_cents  bigint NOT NULL CHECK (spent_cents >= 0),
    PRIMARY KEY (campaign_id, day)
);

CREATE TABLE member_wins (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id),
    member_id    uuid NOT NULL,
    day          date NOT NULL,
    wins         integer NOT NULL CHECK (wins >= 1),
    PRIMARY KEY (campaign_id, member_id, day)
);

-- Every draw, won or not: `drawn_prize_id` is what the seed decided, `prize_id` what was awarded.
CREATE TABLE draws (
    campaign_id     uuid NOT NULL REFERENCES campaigns (id),
    scan_id         uuid NOT NULL,
    member_id       uuid NOT NULL,
    drawn_prize_id  uuid REFERENCES prizes (id),
    prize_id        uuid REFERENCES prizes (id),
    slot            integer CHECK (slot >= 1),
    result          text NOT NULL CHECK (result IN ('won', 'no_prize', 'sold_out', 'over_budget', 'capped')),
    drawn_at        timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, scan_id),
    -- Prize slot numbers are unique and numbered within stock: a second winner of slot N is impossible.
    UNIQUE (prize_id, slot),
    CHECK ((result = 'won') = (prize_id IS NOT NULL AND slot IS NOT NULL))
);
CREATE INDEX draws_member ON draws (member_id, campaign_id);
