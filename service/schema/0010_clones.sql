-- Clone detection: per-brand thresholds (antifraud.clones) and the codes flagged for review.

CREATE TABLE clone_rules (
    brand_id       uuid PRIMARY KEY REFERENCES brands (id),
    devices        integer NOT NULL CHECK (devices BETWEEN 2 AND 100000),
    regions        integer NOT NULL CHECK (regions BETWEEN 2 AND 1000),
    -- NULL: the travel rule is off.
    max_speed_kmh  integer CHECK (max_speed_kmh BETWEEN 50 AND 100000),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    change_seq     bigint NOT NULL DEFAULT 0
);
-- Scan workers keep the rules in memory with the code registry.
CREATE TRIGGER clone_rules_change BEFORE INSERT OR UPDATE ON clone_rules
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();

-- A code whose scans crossed a clone threshold; reviewed (and cleared, or confirmed) by the brand.
CREATE TABLE flagged_codes (
    id                bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    brand_id          uuid NOT NULL REFERENCES brands (id),
    key_id            smallint NOT NULL,
    code_index        bigint NOT NULL,
    batch_id          uuid NOT NULL,
    score             integer NOT NULL CHECK (score >= 0),
    reasons           text[] NOT NULL,
    suspect_scans     integer NOT NULL CHECK (suspect_scans >= 1),
    first_flagged_at  timestamptz NOT NULL,
    last_flagged_at   timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cleared', 'confirmed')),
    reviewed_by       text,
    reviewed_at       timestamptz,
    PRIMARY KEY (brand_id, key_id, code_index)
);
CREATE INDEX flagged_codes_review ON flagged_codes (brand_id, status, last_flagged_at);
