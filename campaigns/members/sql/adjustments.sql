-- approval_threshold --
SELECT coalesce((SELECT adjustment_approval_points FROM member_settings WHERE brand_id = %(brand_id)s), 1000)
    AS points;

-- request_adjustment --
INSERT INTO points_adjustment_requests (brand_id, member_id, amount, reason, requested_by)
SELECT brand_id, id, %(amount)s, %(reason)s, %(actor)s FROM members
WHERE id = %(member_id)s AND brand_id = %(brand_id)s
RETURNING id, member_id, amount, reason, requested_by, requested_at, status, decided_by, decided_at,
       decision_reason;

-- list_requests --
SELECT id, member_id, amount, reason, requested_by, requested_at, status, decided_by, decided_at,
       decision_reason
FROM points_adjustment_requests
WHERE brand_id = %(brand_id)s AND status = %(status)s AND (%(after)s::bigint IS NULL OR id > %(after)s)
ORDER BY id LIMIT %(limit)s;

-- lock_request --
SELECT id, member_id, amount, reason, requested_by, requested_at, status, decided_by, decided_at,
       decision_reason
FROM points_adjustment_requests WHERE id = %(request_id)s AND brand_id = %(brand_id)s
FOR UPDATE;

-- decide_request --
UPDATE points_adjustment_requests
SET status = %(status)s, decided_by = %(actor)s, decided_at = %(now)s, decision_reason = %(reason)s
WHERE id = %(request_id)s AND brand_id = %(brand_id)s AND status = 'pending'
RETURNING id, member_id, amount, reason, requested_by, requested_at, status, decided_by, decided_at,
       decision_reason;
