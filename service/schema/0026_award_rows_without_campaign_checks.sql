-- A scan's rewards are written by one statement, award_scan_rewards, which takes each campaign id from
-- a join with `campaigns`, under that campaign's row lock (and campaigns are never deleted). The foreign
-- keys from the award rows to `campaigns` re-checked that with one trigger run per row: 0.8 ms of a 13 ms
-- batch of 41 rewarded scans (auto_explain), in the part of the work that runs one campaign at a time.
ALTER TABLE points_awards DROP CONSTRAINT points_awards_campaign_id_fkey;
ALTER TABLE draws DROP CONSTRAINT draws_campaign_id_fkey;
ALTER TABLE member_wins DROP CONSTRAINT member_wins_campaign_id_fkey;
