-- insert_template --
INSERT INTO coupon_templates (brand_id, name, discount_kind, amount_off_cents, percent_off, max_discount_cents,
                              min_spend_cents, valid_from, valid_until, valid_days, usage_limit, cost_cents)
VALUES (%(brand_id)s, %(name)s, %(discount_kind)s, %(amount_off_cents)s, %(percent_off)s, %(max_discount_cents)s,
        %(min_spend_cents)s, %(valid_from)s, %(valid_until)s, %(valid_days)s, %(usage_limit)s, %(cost_cents)s)
RETURNING id, brand_id, name, discount_kind, amount_off_cents, percent_off, max_discount_cents, min_spend_cents,
          valid_from, valid_until, valid_days, usage_limit, cost_cents, created_at;

-- get_template --
SELECT id, brand_id, name, discount_kind, amount_off_cents, percent_off, max_discount_cents, min_spend_cents,
       valid_from, valid_until, valid_days, usage_limit, cost_cents, created_at
FROM coupon_templates WHERE brand_id = %(brand_id)s AND id = %(template_id)s;

-- list_templates --
SELECT id, brand_id, name, discount_kind, amount_off_cents, percent_off, max_discount_cents, min_spend_cents,
       valid_from, valid_until, valid_days, usage_limit, cost_cents, created_at
FROM coupon_templates
WHERE brand_id = %(brand_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id LIMIT %(limit)s;

-- template_by_name --
-- The brand's oldest template of that name (for seeds that must not create it twice).
SELECT id, brand_id, name, discount_kind, amount_off_cents, percent_off, max_discount_cents, min_spend_cents,
       valid_from, valid_until, valid_days, usage_limit, cost_cents, created_at
FROM coupon_templates WHERE brand_id = %(brand_id)s AND name = %(name)s ORDER BY created_at, id LIMIT 1;

-- count_brand_templates --
SELECT count(*) AS n FROM coupon_templates WHERE brand_id = %(brand_id)s AND id = ANY(%(ids)s::uuid[]);

-- coupon_for_update --
-- The till's view of a coupon, locked so that concurrent redemptions of it queue and count one by one.
SELECT c.id, c.brand_id, c.valid_from, c.valid_until, c.uses, c.usage_limit, t.name, t.discount_kind,
       t.amount_off_cents, t.percent_off, t.max_discount_cents, t.min_spend_cents
FROM coupons c JOIN coupon_templates t ON t.id = c.template_id
WHERE c.code_hash = %(code_hash)s
FOR UPDATE OF c;

-- coupon_by_hash --
SELECT c.id, c.brand_id, c.valid_from, c.valid_until, c.uses, c.usage_limit, t.name, t.discount_kind,
       t.amount_off_cents, t.percent_off, t.max_discount_cents, t.min_spend_cents
FROM coupons c JOIN coupon_templates t ON t.id = c.template_id
WHERE c.code_hash = %(code_hash)s;

-- redemption_of_order --
SELECT coupon_id, order_ref, spend_cents, discount_cents, store, redeemed_at
FROM coupon_redemptions WHERE coupon_id = %(coupon_id)s AND order_ref = %(order_ref)s;

-- redeem --
-- The CHECK on coupons (uses <= usage_limit) is the last guard should the checks above ever be wrong.
WITH used AS (
    UPDATE coupons SET uses = uses + 1 WHERE id = %(coupon_id)s
)
INSERT INTO coupon_redemptions (coupon_id, order_ref, spend_cents, discount_cents, store, actor, redeemed_at)
VALUES (%(coupon_id)s, %(order_ref)s, %(spend_cents)s, %(discount_cents)s, %(store)s, %(actor)s, %(now)s)
RETURNING coupon_id, order_ref, spend_cents, discount_cents, store, redeemed_at;

-- member_coupons --
-- A member's wallet, newest first; scoped by brand so a member id never reads across tenants.
SELECT c.id, c.brand_id, c.code_sealed, t.name, t.discount_kind, t.amount_off_cents, t.percent_off, t.max_discount_cents,
       t.min_spend_cents, c.valid_from, c.valid_until, c.uses, c.usage_limit, c.campaign_id, c.issued_at
FROM coupons c JOIN coupon_templates t ON t.id = c.template_id
WHERE c.brand_id = %(brand_id)s AND c.member_id = %(member_id)s
ORDER BY c.issued_at DESC, c.id
LIMIT %(limit)s;
