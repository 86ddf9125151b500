-- The development SMS adapter's outbox (one-time passwords, member-event texts) is kept 30 days, purged
-- by every worker's housekeeping; its rows arrive in time order, which a BRIN index serves at no cost.
CREATE INDEX sms_outbox_created ON sms_outbox USING brin (created_at);
