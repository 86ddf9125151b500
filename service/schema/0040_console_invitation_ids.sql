-- A brand admin lists the open console invitations and revokes one: each gets an id to name it by (its
-- primary key is the link's token hash, a secret's image not to hand around), and a revocation is recorded
-- as such, apart from expiry. New ids are time-ordered (UUID version 7, made by the service), so the
-- list's keyset runs newest first.

ALTER TABLE console_invitations ADD COLUMN id uuid;
-- Those made before get a version 7 id from their creation time as well, random bits after it.
UPDATE console_invitations SET id = (
    substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16)
)::uuid
FROM (SELECT token_hash AS hashed, lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0') AS ms
      FROM console_invitations) AS made
WHERE console_invitations.token_hash = made.hashed;
-- A default for rows written without one (an older process during a rolling deploy).
ALTER TABLE console_invitations
    ALTER COLUMN id SET DEFAULT gen_random_uuid(),
    ALTER COLUMN id SET NOT NULL,
    ADD CONSTRAINT console_invitations_id UNIQUE (id);
CREATE INDEX console_invitations_brand ON console_invitations (brand_id, id);

-- The link stops working at once, whatever its expiry.
ALTER TABLE console_invitations ADD COLUMN revoked_at timestamptz;
