-- Brands' webhooks and the delivery of member events to them (and to members' phones by SMS).

-- count_webhooks --
SELECT count(*) AS webhooks FROM webhooks WHERE brand_id = %(brand_id)s AND active;

-- create_webhook --
INSERT INTO webhooks (id, brand_id, url, secret_sealed, event_types, description, created_by)
VALUES (%(id)s, %(brand_id)s, %(url)s, %(secret_sealed)s, %(event_types)s, %(description)s, %(created_by)s)
RETURNING id, url, event_types, description, active, created_by, created_at;

-- list_webhooks --
-- Oldest first, keyset by (created_at, id): `after` is the last webhook of the previous page, found even
-- when it was deleted in between (a deleted webhook is deactivated, never removed).
SELECT id, url, event_types, description, active, created_by, created_at
FROM webhooks w
WHERE w.brand_id = %(brand_id)s AND w.active
  AND (%(after)s::uuid IS NULL
       OR (w.created_at, w.id) > (SELECT p.created_at, p.id FROM webhooks p
                                  WHERE p.id = %(after)s::uuid AND p.brand_id = %(brand_id)s))
ORDER BY w.created_at, w.id LIMIT %(limit)s;

-- get_webhook --
SELECT id, url, event_types, description, active, created_by, created_at
FROM webhooks WHERE brand_id = %(brand_id)s AND id = %(webhook_id)s AND active;

-- deactivate_webhook --
-- Deleted webhooks stay (their delivery log refers to them) but receive nothing more.
WITH gone AS (
    UPDATE webhooks SET active = false, deactivated_at = now()
    WHERE brand_id = %(brand_id)s AND id = %(webhook_id)s AND active
    RETURNING id
), cancelled AS (
    UPDATE member_event_deliveries d SET status = 'cancelled', last_error = 'webhook deleted'
    FROM gone WHERE d.webhook_id = gone.id AND d.status = 'pending'
)
SELECT id FROM gone;

-- list_deliveries --
SELECT d.id, d.event_id, e.type AS event_type, d.channel, d.webhook_id, d.status, d.attempts,
       d.next_attempt_at, d.give_up_at, d.last_attempt_at, d.last_status_code, d.last_error,
       d.delivered_at, d.created_at
FROM member_event_deliveries d
JOIN member_events e ON e.id = d.event_id
WHERE d.brand_id = %(brand_id)s AND d.webhook_id = %(webhook_id)s
  AND d.id > coalesce(%(after)s::bigint, 0)
  AND (%(status)s::text IS NULL OR d.status = %(status)s::text)
ORDER BY d.id
LIMIT %(limit)s;

-- get_delivery --
SELECT d.id, d.event_id, e.type AS event_type, d.channel, d.webhook_id, d.status, d.attempts,
       d.next_attempt_at, d.give_up_at, d.last_attempt_at, d.last_status_code, d.last_error,
       d.delivered_at, d.created_at
FROM member_event_deliveries d
JOIN member_events e ON e.id = d.event_id
WHERE d.brand_id = %(brand_id)s AND d.webhook_id = %(webhook_id)s AND d.id = %(delivery_id)s;

-- list_attempts --
SELECT id, attempted_at, status_code, error, duration_ms
FROM member_event_attempts WHERE delivery_id = %(delivery_id)s
ORDER BY id;

-- retry_delivery --
-- A staff retry of a delivery that gave up: due now, with a fresh day of retries.
UPDATE member_event_deliveries SET
    status = 'pending', next_attempt_at = %(now)s, give_up_at = %(now)s + %(give_up_after)s
WHERE brand_id = %(brand_id)s AND webhook_id = %(webhook_id)s AND id = %(delivery_id)s
  AND status IN ('failed', 'cancelled');

-- claim_due --
-- Take up to `limit` due deliveries; another worker skips the rows locked here, and once this commits
-- the lease (next_attempt_at moved ahead) keeps them away until the attempt is recorded, or, should this
-- worker die, until the lease ends and another worker retries.
WITH due AS (
    SELECT id FROM member_event_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE member_event_deliveries d SET next_attempt_at = %(now)s + %(lease)s
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.brand_id, d.event_id, d.channel, d.webhook_id, d.attempts
)
SELECT c.id, c.brand_id, c.channel, c.attempts, c.webhook_id, w.url, w.secret_sealed,
       e.id AS event_id, e.type AS event_type, e.member_id, e.occurred_at, e.created_at, e.data,
       b.name AS brand_name,
       -- The member's phone only for a text message, and only while it may be sent one.
       CASE WHEN c.channel = 'sms' AND m.consent_marketing_at IS NOT NULL AND m.erased_at IS NULL
            THEN m.phone_sealed END AS phone_sealed,
       CASE WHEN c.channel = 'sms' THEN m.phone_index END AS phone_index,
       CASE WHEN c.channel = 'sms' THEN m.data_key_sealed END AS data_key_sealed
FROM claimed c
JOIN member_events e ON e.id = c.event_id
JOIN members m ON m.id = e.member_id AND m.brand_id = e.brand_id
JOIN brands b ON b.id = c.brand_id
LEFT JOIN webhooks w ON w.id = c.webhook_id
ORDER BY c.id;

-- record_attempt --
-- Delivered on success; otherwise due again at `retry_at`, or given up once that is past give_up_at.
-- A delivery cancelled while its attempt was in flight stays cancelled.
WITH attempt AS (
    INSERT INTO member_event_attempts (delivery_id, attempted_at, status_code, error, duration_ms)
    VALUES (%(delivery_id)s, %(now)s, %(status_code)s, %(error)s, %(duration_ms)s)
)
UPDATE member_event_deliveries SET
    attempts = attempts + 1, last_attempt_at = %(now)s, last_status_code = %(status_code)s,
    last_error = %(error)s,
    status = CASE WHEN %(ok)s THEN 'delivered'
                  WHEN %(retry_at)s > give_up_at THEN 'failed'
                  ELSE 'pending' END,
    delivered_at = CASE WHEN %(ok)s THEN %(now)s END,
    next_attempt_at = %(retry_at)s
WHERE id = %(delivery_id)s AND status = 'pending'
RETURNING status;

-- cancel_delivery --
UPDATE member_event_deliveries SET status = 'cancelled', last_error = %(reason)s
WHERE id = %(delivery_id)s AND status = 'pending';
