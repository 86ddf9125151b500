-- Code issuance: products, brand keys, batches (index ranges, no per-code rows), aggregation, trace events.

CREATE TABLE products (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id    uuid NOT NULL REFERENCES brands (id),
    -- GTIN-14 form; a GTIN identifies one product of one brand worldwide.
    gtin        text UNIQUE CHECK (gtin ~ '^[0-9]{14}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sku         text CHECK (length(sku) <= 64),
    image_url   text CHECK (length(image_url) <= 2048),
    attributes  jsonb NOT NULL DEFAULT '{}',
    facts       jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (brand_id, id)
);
CREATE UNIQUE INDEX products_brand_sku ON products (brand_id, sku) WHERE sku IS NOT NULL;

-- Key slots 0..15 are carried in every serial; each slot owns a 32-bit item index space.
CREATE TABLE brand_keys (
    brand_id          uuid NOT NULL REFERENCES brands (id),
    key_id            smallint NOT NULL CHECK (key_id BETWEEN 0 AND 15),
    sealed_mac_key    bytea NOT NULL,
    ed25519_public    bytea NOT NULL,
    sealed_ed25519    bytea NOT NULL,
    next_index        bigint NOT NULL DEFAULT 0 CHECK (next_index BETWEEN 0 AND 4294967296),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, key_id)
);

CREATE TABLE batches (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- A small number per batch, so item positions fit one bigint range (see aggregation_items).
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    brand_id        uuid NOT NULL REFERENCES brands (id),
    product_id      uuid NOT NULL,
    key_id          smallint NOT NULL,
    start_index     bigint NOT NULL CHECK (start_index >= 0),
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 100000000),
    lot             text CHECK (length(lot) <= 64),
    production_date date,
    line            text CHECK (length(line) <= 64),
    signed          boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'exported', 'voided')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    voided_at       timestamptz,
    FOREIGN KEY (brand_id, product_id) REFERENCES products (brand_id, id),
    FOREIGN KEY (brand_id, key_id) REFERENCES brand_keys (brand_id, key_id),
    CHECK (start_index + quantity <= 4294967296),
    CHECK ((status = 'voided') = (voided_at IS NOT NULL))
);
CREATE INDEX batches_brand_created ON batches (brand_id, created_at, id);
ALTER TABLE batches ADD UNIQUE (id, seq);
CREATE UNIQUE INDEX batches_key_range ON batches (brand_id, key_id, start_index);

-- Cases and pallets: an SSCC (or a short-form code) whose children are item ranges or other aggregations.
CREATE TABLE aggregations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id    uuid NOT NULL REFERENCES brands (id),
    level       text NOT NULL CHECK (level IN ('case', 'pallet')),
    sscc        text NOT NULL CHECK (sscc ~ '^[0-9]{18}$'),
    parent_id   uuid REFERENCES aggregations (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (brand_id, sscc),
    UNIQUE (brand_id, id)
);
CREATE INDEX aggregations_parent ON aggregations (parent_id);

-- Item children as index ranges [start_index, stop_index) of one batch; explicit lists are ranges of one.
CREATE TABLE aggregation_items (
    aggregation_id uuid NOT NULL REFERENCES aggregations (id),
    brand_id       uuid NOT NULL,
    batch_id       uuid NOT NULL,
    batch_seq      bigint NOT NULL,
    start_index    bigint NOT NULL,
    stop_index     bigint NOT NULL,
    positions      int8range GENERATED ALWAYS AS
                       (int8range(batch_seq * 4294967296 + start_index, batch_seq * 4294967296 + stop_index)) STORED,
    FOREIGN KEY (batch_id, batch_seq) REFERENCES batches (id, seq),
    CHECK (stop_index > start_index),
    -- An item sits in one case at most (plain range gist: no extension needed).
    CONSTRAINT aggregation_items_one_parent EXCLUDE USING gist (positions WITH &&)
);
CREATE INDEX aggregation_items_parent ON aggregation_items (aggregation_id);

-- EPCIS-style traceability events (commissioning, packing, shipping, ...), exported later as EPCIS 2.0.
CREATE TABLE trace_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL REFERENCES brands (id),
    event_type  text NOT NULL,
    biz_step    text NOT NULL,
    batch_id    uuid REFERENCES batches (id),
    aggregation_id uuid REFERENCES aggregations (id),
    start_index bigint,
    stop_index  bigint,
    payload     jsonb NOT NULL DEFAULT '{}',
    event_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trace_events_batch ON trace_events (batch_id, event_time);

-- Scan workers cache products, keys and batches in memory; this sequence tells them what changed since
-- their last look, so they reload only those rows.
CREATE SEQUENCE registry_change_seq;
CREATE FUNCTION stamp_registry_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('registry_change_seq');
    RETURN NEW;
END;
$$;
ALTER TABLE products ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE brand_keys ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
CREATE TRIGGER products_change BEFORE INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE TRIGGER brand_keys_change BEFORE INSERT OR UPDATE ON brand_keys
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE TRIGGER batches_change BEFORE INSERT OR UPDATE ON batches
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE INDEX products_change_seq ON products (change_seq);
CREATE INDEX brand_keys_change_seq ON brand_keys (change_seq);
CREATE INDEX batches_change_seq ON batches (change_seq);

-- Serial references for generated SSCCs, per brand and GS1 company prefix.
CREATE TABLE sscc_counters (
    brand_id       uuid NOT NULL REFERENCES brands (id),
    company_prefix text NOT NULL CHECK (company_prefix ~ '^[0-9]{6,12}$'),
    next_ref       bigint NOT NULL DEFAULT 0 CHECK (next_ref >= 0),
    PRIMARY KEY (brand_id, company_prefix)
);
