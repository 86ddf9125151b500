-- Coupons: templates marketers define, coupons issued by scans (coupon campaigns, coupon prizes of lucky
-- draws), and redemptions at the point of sale.

-- The till redeems coupons with a token of its own that can do nothing else.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('platform_admin', 'brand_admin', 'marketer', 'operations', 'customer_service', 'finance',
                    'distributor', 'auditor', 'point_of_sale'));

CREATE TABLE coupon_templates (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id            uuid NOT NULL REFERENCES brands (id),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    discount_kind       text NOT NULL CHECK (discount_kind IN ('amount', 'percent')),
    amount_off_cents    bigint CHECK (amount_off_cents > 0),
    percent_off         integer CHECK (percent_off BETWEEN 1 AND 100),
    -- A percent discount may be capped; an amount discount is its own cap.
    max_discount_cents  bigint CHECK (max_discount_cents > 0),
    min_spend_cents     bigint NOT NULL DEFAULT 0 CHECK (min_spend_cents >= 0),
    -- Validity: a fixed window, a number of days from issue, or both (the earlier end wins).
    valid_from          timestamptz,
    valid_until         timestamptz,
    valid_days          integer CHECK (valid_days BETWEEN 1 AND 3650),
    -- Uses per issued coupon.
    usage_limit         integer NOT NULL DEFAULT 1 CHECK (usage_limit BETWEEN 1 AND 1000),
    -- What issuing one coupon charges a campaign's budget (its expected cost to the brand).
    cost_cents          bigint NOT NULL CHECK (cost_cents >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((discount_kind = 'amount') = (amount_off_cents IS NOT NULL)),
    CHECK ((discount_kind = 'percent') = (percent_off IS NOT NULL)),
    CHECK (valid_until IS NOT NULL OR valid_days IS NOT NULL),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from),
    UNIQUE (brand_id, id)
);

CREATE TABLE coupons (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id      uuid NOT NULL,
    template_id   uuid NOT NULL,
    member_id     uuid NOT NULL,
    -- SHA-256 of the code the member shows at the till; the code itself only sealed, for the wallet.
    code_hash     bytea NOT NULL UNIQUE,
    code_sealed   bytea NOT NULL,
    campaign_id   uuid REFERENCES campaigns (id),
    scan_id       uuid,
    valid_from    timestamptz NOT NULL,
    valid_until   timestamptz NOT NULL,
    usage_limit   integer NOT NULL,
    uses          integer NOT NULL DEFAULT 0,
    issued_at     timestamptz NOT NULL,
    -- What the coupon cost its campaign and on which campaign-local day (a draw's prize: on the draw).
    cost_cents    bigint NOT NULL DEFAULT 0 CHECK (cost_cents >= 0),
    day           date,
    CONSTRAINT coupons_within_limit CHECK (uses BETWEEN 0 AND usage_limit),
    -- A coupon of a brand is always made from that brand's own template.
    FOREIGN KEY (brand_id, template_id) REFERENCES coupon_templates (brand_id, id),
    UNIQUE (campaign_id, scan_id)
);
CREATE INDEX coupons_member ON coupons (member_id, issued_at DESC);
CREATE INDEX coupons_campaign ON coupons (campaign_id) WHERE campaign_id IS NOT NULL;

-- One row per use; the till's order reference makes a retried redemption return the first answer.
CREATE TABLE coupon_redemptions (
    coupon_id       uuid NOT NULL REFERENCES coupons (id),
    order_ref       text NOT NULL CHECK (length(order_ref) BETWEEN 1 AND 100),
    spend_cents     bigint NOT NULL CHECK (spend_cents >= 0),
    discount_cents  bigint NOT NULL CHECK (discount_cents >= 0 AND discount_cents <= spend_cents),
    store           text,
    actor           text NOT NULL,
    redeemed_at     timestamptz NOT NULL,
    PRIMARY KEY (coupon_id, order_ref)
);

-- A coupon campaign issues one coupon of its template per rewarded scan.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_kind_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_kind_check CHECK (kind IN ('points', 'lucky_draw', 'coupon'));
ALTER TABLE campaigns ADD COLUMN coupon_template_id uuid;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_coupon_template
    FOREIGN KEY (brand_id, coupon_template_id) REFERENCES coupon_templates (brand_id, id);
ALTER TABLE campaigns ADD CONSTRAINT campaigns_coupon_has_template
    CHECK ((kind = 'coupon') = (coupon_template_id IS NOT NULL));

-- A coupon prize of a lucky draw names the template its winners get (the campaign's brand is checked
-- on save; prizes made before this migration issue nothing).
ALTER TABLE prizes ADD COLUMN coupon_template_id uuid REFERENCES coupon_templates (id);
ALTER TABLE prizes ADD CONSTRAINT prizes_template_for_coupons
    CHECK (coupon_template_id IS NULL OR kind = 'coupon');
