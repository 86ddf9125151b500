-- members_brand (brand_id, id) duplicates the unique index behind UNIQUE (brand_id, id), which the
-- member foreign keys need anyway: one index fewer to write for every member a first scan creates.
DROP INDEX members_brand;
