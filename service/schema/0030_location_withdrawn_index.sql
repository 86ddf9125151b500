-- Every worker reloads the members who withdrew location consent every few seconds (LocationWithdrawals):
-- a few rows out of millions, read through these instead of the whole table.
CREATE INDEX members_location_withdrawn ON members (id) WHERE location_withdrawn_at IS NOT NULL;
CREATE INDEX members_merged_into ON members (merged_into) WHERE merged_into IS NOT NULL;
