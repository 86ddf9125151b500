-- When a member's location consent last changed (given or withdrawn): every worker reads the changes of
-- the last minute every few seconds (LocationWithdrawals), instead of every withdrawal again.
ALTER TABLE members ADD COLUMN location_consent_changed_at timestamptz;
CREATE INDEX members_location_consent_changed ON members (location_consent_changed_at)
    WHERE location_consent_changed_at IS NOT NULL;
