-- A lucky draw's winners in the order its lists page them (winners.csv, prize claims: keyset-paged by
-- (won_at, scan_id)): a page reads its rows in order instead of sorting every winner of the campaign.
-- Partial: most draws are "no prize", and only wins are listed.
CREATE INDEX draws_winners ON draws (campaign_id, drawn_at, scan_id) WHERE result = 'won';
