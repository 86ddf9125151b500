-- Blocklist: devices, members and IP ranges a brand refuses scans from, until an expiry or a lift.
CREATE TABLE blocks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL REFERENCES brands (id),
    kind        text NOT NULL CHECK (kind IN ('device', 'member', 'ip')),
    -- A device id, a member id, or a CIDR range (one address is a /32 or /128).
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 128),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 3 AND 200),
    expires_at  timestamptz,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lifted_by   text,
    lifted_at   timestamptz,
    change_seq  bigint NOT NULL DEFAULT 0,
    CHECK ((lifted_at IS NULL) = (lifted_by IS NULL))
);
CREATE INDEX blocks_brand ON blocks (brand_id, id);
-- Scan workers keep the active blocks in memory with the code registry.
CREATE TRIGGER blocks_change BEFORE INSERT OR UPDATE ON blocks
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE INDEX blocks_change_seq ON blocks (change_seq);

-- Counterfeit heat by region: where a forged code was scanned (from the consented location), if known.
ALTER TABLE counterfeit_scans ADD COLUMN region text;
