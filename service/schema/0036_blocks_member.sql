-- The reward statement asks, for each scan it would reward, whether its member is blocked: a member
-- blocked while one of its devices scans without the member's cookie is never paid.
CREATE INDEX blocks_member ON blocks (brand_id, value) WHERE kind = 'member' AND lifted_at IS NULL;
