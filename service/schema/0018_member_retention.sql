-- Retention per brand: members with no scan for this many days (and no unexpired points) are erased
-- by the daily member refresh. Null keeps members until they ask for erasure themselves.
ALTER TABLE member_settings
    ADD COLUMN erase_inactive_after_days integer CHECK (erase_inactive_after_days BETWEEN 30 AND 3650);
