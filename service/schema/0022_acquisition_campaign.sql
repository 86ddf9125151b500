-- Channel of acquisition: besides the product and batch of its first scan, the campaign that rewarded
-- (or drew for) the scan that created the member.
ALTER TABLE members ADD COLUMN acquired_campaign_id uuid;
