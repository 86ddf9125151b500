-- When a member withdrew location consent (PATCH /v1/members/me/consents), until given again: the scan
-- log then keeps no location of that member's scans, whatever device or app still sends one.
ALTER TABLE members ADD COLUMN location_withdrawn_at timestamptz;
