-- Points a member has redeemed over its life: rule tags and segments ask for "spent >= N points".
ALTER TABLE member_stats ADD COLUMN points_spent bigint NOT NULL DEFAULT 0;
