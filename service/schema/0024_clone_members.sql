-- A code scanned by many distinct known members (member tokens, i.e. returning people with accounts)
-- is copied: a bottle is not shared by five households. Brands tune it like the other clone rules.
ALTER TABLE clone_rules ADD COLUMN members integer NOT NULL DEFAULT 5 CHECK (members BETWEEN 2 AND 100000);
