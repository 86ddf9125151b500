-- Distributors, shipments and activation: codes are inert until a shipment activates them.

-- How a batch's codes come alive: `on_shipment` (inert until shipped: a scan before is `not_activated`,
-- the sign of a leaked print file) or `on_issue` (live once issued, for brands without logistics data).
-- Batches issued before this migration were live from the start.
ALTER TABLE batches ADD COLUMN activation text NOT NULL DEFAULT 'on_issue'
    CHECK (activation IN ('on_shipment', 'on_issue'));
ALTER TABLE batches ALTER COLUMN activation SET DEFAULT 'on_shipment';

CREATE TABLE distributors (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id    uuid NOT NULL REFERENCES brands (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Authorized sales regions: ISO 3166-2 subdivision codes (CN-ZJ) or whole countries (CN).
    regions     text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (brand_id, name),
    UNIQUE (brand_id, id)
);

CREATE TABLE shipments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id        uuid NOT NULL,
    distributor_id  uuid NOT NULL,
    reference       text CHECK (length(reference) <= 100),
    items           bigint NOT NULL CHECK (items > 0),
    shipped_at      timestamptz NOT NULL,
    shipped_by      text NOT NULL,
    received_at     timestamptz,
    received_by     text,
    FOREIGN KEY (brand_id, distributor_id) REFERENCES distributors (brand_id, id),
    CHECK ((received_at IS NULL) = (received_by IS NULL)),
    UNIQUE (brand_id, id)
);
CREATE INDEX shipments_distributor ON shipments (brand_id, distributor_id, shipped_at);

-- Item ranges [start_index, stop_index) of a batch (positions within it) that a shipment activated.
-- An item is shipped once: ranges never overlap (same gist trick as aggregation_items).
CREATE TABLE activations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id        uuid NOT NULL,
    shipment_id     uuid NOT NULL REFERENCES shipments (id),
    distributor_id  uuid NOT NULL,
    batch_id        uuid NOT NULL,
    batch_seq       bigint NOT NULL,
    start_index     bigint NOT NULL CHECK (start_index >= 0),
    stop_index      bigint NOT NULL,
    positions       int8range GENERATED ALWAYS AS
                        (int8range(batch_seq * 4294967296 + start_index, batch_seq * 4294967296 + stop_index)) STORED,
    change_seq      bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (batch_id, batch_seq) REFERENCES batches (id, seq),
    CHECK (stop_index > start_index),
    CONSTRAINT activations_ship_once EXCLUDE USING gist (positions WITH &&)
);
CREATE INDEX activations_batch ON activations (batch_id, start_index);
CREATE INDEX activations_shipment ON activations (shipment_id);
-- Scan workers keep activations in memory beside batches; the registry sequence says what is new.
CREATE TRIGGER activations_change BEFORE INSERT OR UPDATE ON activations
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE INDEX activations_change_seq ON activations (change_seq);

-- Whom a scan's item was shipped to (null: not shipped, or an on_issue batch), and where the scan
-- happened (an ISO 3166-2 code, from the consented location; null when unknown): diversion reports.
ALTER TABLE scans ADD COLUMN distributor_id uuid;
ALTER TABLE scans ADD COLUMN region text;
-- Judged when scanned, against the territory the item was shipped under: a diversion (grey market).
ALTER TABLE scans ADD COLUMN diverted boolean NOT NULL DEFAULT false;
CREATE INDEX scans_diverted ON scans (brand_id, distributor_id, scanned_at) WHERE diverted;

-- A distributor token names one of its brand's distributors (tokens made before had nothing to name).
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_distributor_fkey
    FOREIGN KEY (brand_id, distributor_id) REFERENCES distributors (brand_id, id) NOT VALID;
