-- Member events: each trigger inserts its facts into the outbox under an id derived from the fact
-- (member_event_id), so generating a fact again is a no-op (ON CONFLICT DO NOTHING). Erased and
-- merged-away members get no events.

-- first_scan_events --
-- Members (of this refresh) whose first genuine scan is recent; older first scans are history, not news.
INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at, data,
                           fanned_out_at)
SELECT member_event_id(s.brand_id, 'first_scan', s.member_id, ''), s.brand_id, s.member_id, 'first_scan', '',
       s.first_scan_at, %(now)s, '{}', %(now)s
FROM member_stats s
JOIN members m ON m.id = s.member_id AND m.brand_id = s.brand_id
WHERE s.first_scan_at >= %(since)s
  AND m.erased_at IS NULL AND m.merged_into IS NULL
  AND (%(member_ids)s::uuid[] IS NULL OR s.member_id = ANY(%(member_ids)s::uuid[]))
ON CONFLICT DO NOTHING;

-- tier_change_events --
-- The tier changes this refresh wrote (they are stamped with its `now`).
INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at, data,
                           fanned_out_at)
SELECT member_event_id(c.brand_id, 'tier_change', c.member_id, c.id::text), c.brand_id, c.member_id,
       'tier_change', c.id::text, c.changed_at, %(now)s,
       jsonb_build_object('from_rank', c.from_rank, 'to_rank', c.to_rank,
                          'from_tier', ft.name, 'to_tier', tt.name), %(now)s
FROM member_tier_changes c
JOIN members m ON m.id = c.member_id AND m.brand_id = c.brand_id
LEFT JOIN member_tiers ft ON ft.brand_id = c.brand_id AND ft.rank = c.from_rank
LEFT JOIN member_tiers tt ON tt.brand_id = c.brand_id AND tt.rank = c.to_rank
WHERE c.changed_at = %(now)s AND m.erased_at IS NULL AND m.merged_into IS NULL
ON CONFLICT DO NOTHING;

-- lifecycle_events --
-- The stage changes this refresh wrote that matter to a brand: falling dormant (or straight to churned),
-- and coming back from dormant or churned.
INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at, data,
                           fanned_out_at)
SELECT member_event_id(c.brand_id, k.type, c.member_id, c.id::text), c.brand_id, c.member_id, k.type,
       c.id::text, c.changed_at, %(now)s,
       jsonb_build_object('from', c.from_lifecycle, 'to', c.to_lifecycle, 'last_scan_at', s.last_scan_at), %(now)s
FROM member_lifecycle_changes c
JOIN members m ON m.id = c.member_id AND m.brand_id = c.brand_id
LEFT JOIN member_stats s ON s.member_id = c.member_id
CROSS JOIN LATERAL (
    SELECT CASE
               WHEN c.from_lifecycle IN ('new', 'active') AND c.to_lifecycle IN ('dormant', 'churned')
                   THEN 'dormancy_reached'
               WHEN c.from_lifecycle IN ('dormant', 'churned') AND c.to_lifecycle IN ('new', 'active')
                   THEN 'reactivated'
           END AS type
) k
WHERE c.changed_at = %(now)s AND k.type IS NOT NULL AND m.erased_at IS NULL AND m.merged_into IS NULL
ON CONFLICT DO NOTHING;

-- points_expiring_events --
-- One event per member and (brand-local) expiry date with points lapsing within the notice period.
WITH calendar AS (
    SELECT b.id AS brand_id, coalesce(s.time_zone, 'Asia/Shanghai') AS time_zone,
           coalesce(s.expiry_notice_days, 30) AS notice_days
    FROM brands b LEFT JOIN member_event_settings s ON s.brand_id = b.id
), expiring AS (
    SELECT l.brand_id, l.member_id, (l.expires_at AT TIME ZONE c.time_zone)::date AS expires_on,
           sum(l.remaining) AS points, min(l.expires_at) AS expires_at
    FROM points_lots l
    JOIN calendar c ON c.brand_id = l.brand_id
    JOIN members m ON m.id = l.member_id AND m.brand_id = l.brand_id
    WHERE l.remaining > 0 AND l.expires_at > %(now)s
      -- The longest notice period bounds the range scan of points_lots_expiring.
      AND l.expires_at <= %(now)s + interval '365 days'
      AND l.expires_at <= %(now)s + make_interval(days => c.notice_days)
      AND m.erased_at IS NULL AND m.merged_into IS NULL
    GROUP BY l.brand_id, l.member_id, (l.expires_at AT TIME ZONE c.time_zone)::date
)
INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at, data,
                           fanned_out_at)
SELECT member_event_id(brand_id, 'points_expiring', member_id, expires_on::text), brand_id, member_id,
       'points_expiring', expires_on::text, %(now)s, %(now)s,
       jsonb_build_object('points', points, 'expires_on', expires_on, 'expires_at', expires_at), %(now)s
FROM expiring
ON CONFLICT DO NOTHING;

-- birthday_events --
-- Members whose birthday is today in the brand's time zone, once a year. A 29 February birthday is
-- celebrated on 28 February in other years.
WITH calendar AS (
    SELECT b.id AS brand_id, (%(now)s AT TIME ZONE coalesce(s.time_zone, 'Asia/Shanghai'))::date AS today
    FROM brands b LEFT JOIN member_event_settings s ON s.brand_id = b.id
)
INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at, data,
                           fanned_out_at)
SELECT member_event_id(m.brand_id, 'birthday', m.id, to_char(c.today, 'YYYY')), m.brand_id, m.id, 'birthday',
       to_char(c.today, 'YYYY'), %(now)s, %(now)s, jsonb_build_object('local_date', c.today), %(now)s
FROM calendar c
JOIN members m ON m.brand_id = c.brand_id
WHERE m.erased_at IS NULL AND m.merged_into IS NULL
  AND (m.birthday_md = to_char(c.today, 'MMDD')::smallint
       OR (m.birthday_md = 229 AND to_char(c.today, 'MMDD') = '0228' AND to_char(c.today + 1, 'MMDD') = '0301'))
ON CONFLICT DO NOTHING;

-- last_event --
SELECT coalesce(max(seq), 0) AS seq FROM member_events;

-- fan_out --
-- The events this refresh wrote (after `after_seq`: the refresh runs alone, under its lock) get one
-- delivery per active webhook of their brand that subscribes to their type, and one by SMS when they
-- have a text and the member has a phone and marketing consent. They were written already marked as
-- fanned out, in this same transaction: marking them afterwards rewrote every row (in a promotion,
-- hundreds of thousands a minute). Events written unmarked (by an older version) are taken too.
WITH unmarked AS (
    UPDATE member_events SET fanned_out_at = %(now)s
    WHERE fanned_out_at IS NULL
    RETURNING id, brand_id, member_id, type
), fresh AS (
    SELECT id, brand_id, member_id, type FROM member_events WHERE seq > %(after_seq)s
    UNION ALL
    SELECT id, brand_id, member_id, type FROM unmarked
), hooks AS (
    INSERT INTO member_event_deliveries (brand_id, event_id, channel, webhook_id, next_attempt_at,
                                         give_up_at, created_at)
    SELECT f.brand_id, f.id, 'webhook', w.id, %(now)s, %(now)s + %(give_up_after)s, %(now)s
    FROM fresh f
    JOIN webhooks w ON w.brand_id = f.brand_id AND w.active
        AND (w.event_types IS NULL OR f.type = ANY(w.event_types))
    RETURNING 1
), texts AS (
    INSERT INTO member_event_deliveries (brand_id, event_id, channel, next_attempt_at, give_up_at,
                                         created_at)
    SELECT f.brand_id, f.id, 'sms', %(now)s, %(now)s + %(give_up_after)s, %(now)s
    FROM fresh f
    JOIN members m ON m.id = f.member_id AND m.brand_id = f.brand_id
    WHERE f.type = ANY(%(sms_types)s::text[])
      AND m.phone_sealed IS NOT NULL AND m.consent_marketing_at IS NOT NULL AND m.erased_at IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM fresh) AS events, (SELECT count(*) FROM hooks) AS webhooks,
       (SELECT count(*) FROM texts) AS texts;

-- list_events --
SELECT seq, id, brand_id, member_id, type, occurred_at, created_at, data
FROM member_events
WHERE brand_id = %(brand_id)s AND seq > coalesce(%(after)s::bigint, 0)
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(member_id)s::uuid IS NULL OR member_id = %(member_id)s::uuid)
ORDER BY seq
LIMIT %(limit)s;

-- get_settings --
SELECT coalesce(s.expiry_notice_days, 30) AS expiry_notice_days,
       coalesce(s.time_zone, 'Asia/Shanghai') AS time_zone
FROM (SELECT %(brand_id)s::uuid AS brand_id) b
LEFT JOIN member_event_settings s ON s.brand_id = b.brand_id;

-- known_time_zone --
SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = %(name)s) AS known;

-- put_settings --
INSERT INTO member_event_settings (brand_id, expiry_notice_days, time_zone, updated_at)
VALUES (%(brand_id)s, %(expiry_notice_days)s, %(time_zone)s, now())
ON CONFLICT (brand_id) DO UPDATE SET
    expiry_notice_days = excluded.expiry_notice_days, time_zone = excluded.time_zone, updated_at = now();
