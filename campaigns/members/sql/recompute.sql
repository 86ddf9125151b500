-- request_recompute --
-- Every member, at the next refresh (see member_recompute_requests).
INSERT INTO member_recompute_requests (brand_id, reason) VALUES (%(brand_id)s, %(reason)s);

-- take_recompute_requests --
-- In the refresh's transaction: the requests come back if it fails. Requests added meanwhile are not
-- seen (nor deleted) here: the next refresh takes them.
DELETE FROM member_recompute_requests RETURNING brand_id, reason;
