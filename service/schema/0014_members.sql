-- Members as a membership system: per-member data keys, profiles, tags, tiers, lifecycle, statistics.

-- Each member's personal fields (phone, profile, service notes) are sealed under a data key of its own,
-- itself sealed by the master key. Erasure destroys the data key: every copy of those fields goes dark.
ALTER TABLE members
    ADD COLUMN data_key_sealed bytea,
    -- Coarse and not personal on its own: an ISO 3166-2 province code, for segments and reports.
    ADD COLUMN region text CHECK (length(region) BETWEEN 2 AND 10),
    -- The brand's own typed fields (see member_attribute_defs), validated on write.
    ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    ADD COLUMN updated_at timestamptz,
    ADD COLUMN erased_at timestamptz;
CREATE INDEX members_brand ON members (brand_id, id);

-- An erased member's prize delivery details go with it.
ALTER TABLE prize_claims ALTER COLUMN address_sealed DROP NOT NULL;

-- Per-brand membership settings; a brand without a row uses the defaults.
CREATE TABLE member_settings (
    brand_id               uuid PRIMARY KEY REFERENCES brands (id),
    -- Lifecycle by scan recency: new (first scan within new_days), active (a scan within active_days),
    -- dormant (a scan within churn_days), churned (older).
    new_days               integer NOT NULL DEFAULT 30 CHECK (new_days BETWEEN 1 AND 3650),
    active_days            integer NOT NULL DEFAULT 90 CHECK (active_days BETWEEN 1 AND 3650),
    churn_days             integer NOT NULL DEFAULT 365 CHECK (churn_days BETWEEN 1 AND 3650),
    -- Staff point adjustments larger than this (either sign) wait for a finance approval.
    adjustment_approval_points integer NOT NULL DEFAULT 1000 CHECK (adjustment_approval_points >= 0),
    -- Tiers count the scans of this many last days.
    tier_window_days       integer NOT NULL DEFAULT 365 CHECK (tier_window_days BETWEEN 1 AND 3650),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (new_days <= active_days AND active_days < churn_days)
);

-- Brand-defined levels (e.g. 普通/银卡/金卡/钻石). A member holds the highest tier whose thresholds it
-- meets: lifetime points earned (not the balance) and scans in the brand's tier window.
CREATE TABLE member_tiers (
    brand_id             uuid NOT NULL REFERENCES brands (id),
    rank                 smallint NOT NULL CHECK (rank BETWEEN 0 AND 20),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    min_points_earned    integer NOT NULL DEFAULT 0 CHECK (min_points_earned >= 0),
    min_scans            integer NOT NULL DEFAULT 0 CHECK (min_scans >= 0),
    points_multiplier_pct integer NOT NULL DEFAULT 100 CHECK (points_multiplier_pct BETWEEN 100 AND 1000),
    draw_weight_bonus_pct integer NOT NULL DEFAULT 0 CHECK (draw_weight_bonus_pct BETWEEN 0 AND 1000),
    PRIMARY KEY (brand_id, rank),
    UNIQUE (brand_id, name)
);

-- What the scan log and the ledger say about each member, refreshed incrementally and nightly.
CREATE TABLE member_stats (
    brand_id         uuid NOT NULL,
    member_id        uuid PRIMARY KEY,
    scans            integer NOT NULL DEFAULT 0,
    scans_in_window  integer NOT NULL DEFAULT 0,
    -- Codes this member was the first to scan: two or more is a repeat purchase.
    first_scans      integer NOT NULL DEFAULT 0,
    products         integer NOT NULL DEFAULT 0,
    first_scan_at    timestamptz,
    last_scan_at     timestamptz,
    last_region      text,
    points_earned    bigint NOT NULL DEFAULT 0,
    points_balance   bigint NOT NULL DEFAULT 0,
    product_ids      uuid[] NOT NULL DEFAULT '{}',
    tier_rank        smallint NOT NULL DEFAULT 0,
    tier_since       timestamptz,
    lifecycle        text NOT NULL DEFAULT 'new' CHECK (lifecycle IN ('new', 'active', 'dormant', 'churned')),
    lifecycle_since  timestamptz,
    refreshed_at     timestamptz NOT NULL,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_stats_brand ON member_stats (brand_id, last_scan_at);

-- Every tier change, kept: upgrades at once, downgrades at the end of the calendar year.
CREATE TABLE member_tier_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL,
    member_id   uuid NOT NULL,
    from_rank   smallint NOT NULL,
    to_rank     smallint NOT NULL,
    changed_at  timestamptz NOT NULL,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_tier_changes_member ON member_tier_changes (member_id, id);

-- Where the incremental refresh has got to.
CREATE TABLE member_stats_progress (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    refreshed_until  timestamptz NOT NULL,
    full_refresh_on  date NOT NULL
);

-- The brand's custom member fields, typed.
CREATE TABLE member_attribute_defs (
    brand_id    uuid NOT NULL REFERENCES brands (id),
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    type        text NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'date', 'choice')),
    choices     text[],
    CHECK ((type = 'choice') = (choices IS NOT NULL)),
    PRIMARY KEY (brand_id, name)
);

-- Tags: manual (staff add and remove them) or rule tags computed from behaviour.
CREATE TABLE tags (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL REFERENCES brands (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    kind        text NOT NULL CHECK (kind IN ('manual', 'rule')),
    rule        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'rule') = (rule IS NOT NULL)),
    UNIQUE (brand_id, name),
    UNIQUE (brand_id, id)
);

CREATE TABLE member_tags (
    brand_id    uuid NOT NULL,
    tag_id      bigint NOT NULL,
    member_id   uuid NOT NULL,
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag_id, member_id),
    FOREIGN KEY (brand_id, tag_id) REFERENCES tags (brand_id, id) ON DELETE CASCADE,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_tags_member ON member_tags (member_id);

-- Customer service notes, sealed under the member's data key (they may hold personal details).
CREATE TABLE member_notes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id     uuid NOT NULL,
    member_id    uuid NOT NULL,
    body_sealed  bytea NOT NULL,
    author       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_notes_member ON member_notes (member_id, id);

-- Saved segments: a validated filter over members (see campaigns/members/segments.py).
CREATE TABLE segments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id    uuid NOT NULL REFERENCES brands (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    filter      jsonb NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (brand_id, name)
);

-- Large staff adjustments wait here for a finance decision; small ones go straight to the ledger.
CREATE TABLE points_adjustment_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id      uuid NOT NULL,
    member_id     uuid NOT NULL,
    amount        integer NOT NULL CHECK (amount <> 0),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 3 AND 200),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by    text,
    decided_at    timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    -- The four-eyes rule: whoever asked does not approve.
    CHECK (decided_by IS DISTINCT FROM requested_by),
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX points_adjustment_requests_pending ON points_adjustment_requests (brand_id, id)
    WHERE status = 'pending';
