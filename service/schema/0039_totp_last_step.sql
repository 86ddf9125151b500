-- A second-factor code is good once (RFC 6238, 5.2): the last time step a user's code was accepted for,
-- so that a code seen over a shoulder, or replayed from a captured request, opens nothing within its
-- 30 to 90 seconds of validity.
ALTER TABLE console_users ADD COLUMN totp_last_step bigint;
