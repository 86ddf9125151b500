-- Scans: members (anonymous first, enrolled with a phone later), first-scan claims, the scan log.

CREATE TABLE members (
    id                    uuid PRIMARY KEY,
    brand_id              uuid NOT NULL REFERENCES brands (id),
    -- Phone sealed with AES-GCM under the master key; looked up by a keyed hash (blind index).
    phone_sealed          bytea,
    phone_index           bytea,
    phone_last4           text CHECK (phone_last4 ~ '^[0-9]{4}$'),
    profile_sealed        bytea,
    consent_marketing_at  timestamptz,
    consent_location_at   timestamptz,
    acquired_product_id   uuid,
    acquired_batch_id     uuid,
    merged_into           uuid REFERENCES members (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    enrolled_at           timestamptz,
    CHECK ((phone_index IS NULL) = (phone_sealed IS NULL)),
    UNIQUE (brand_id, id)
);
CREATE UNIQUE INDEX members_phone ON members (brand_id, phone_index) WHERE phone_index IS NOT NULL;

-- Which anonymous device belongs to which member; a device is one member per brand.
CREATE TABLE member_devices (
    brand_id    uuid NOT NULL,
    device_id   text NOT NULL CHECK (length(device_id) BETWEEN 8 AND 128),
    member_id   uuid NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, device_id),
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX member_devices_member ON member_devices (member_id);

-- One row per code ever scanned: the primary key is the "one first scan per code" promise.
CREATE TABLE code_claims (
    brand_id          uuid NOT NULL,
    key_id            smallint NOT NULL,
    code_index        bigint NOT NULL,
    batch_id          uuid NOT NULL,
    product_id        uuid NOT NULL,
    first_scan_id     uuid NOT NULL,
    first_member_id   uuid,
    first_device_id   text NOT NULL,
    first_scanned_at  timestamptz NOT NULL,
    scan_count        integer NOT NULL CHECK (scan_count >= 1),
    last_scanned_at   timestamptz NOT NULL,
    PRIMARY KEY (brand_id, key_id, code_index)
);
CREATE INDEX code_claims_batch ON code_claims (batch_id);

-- The scan log, partitioned by month (see ensure_scan_partitions); brand on every row.
CREATE TABLE scans (
    id              uuid NOT NULL,
    scanned_at      timestamptz NOT NULL,
    brand_id        uuid NOT NULL,
    product_id      uuid NOT NULL,
    batch_id        uuid NOT NULL,
    key_id          smallint NOT NULL,
    code_index      bigint NOT NULL,
    verdict         text NOT NULL CHECK (verdict IN
                        ('genuine_first', 'genuine_repeat', 'suspect_clone', 'not_activated', 'counterfeit')),
    scan_number     integer NOT NULL,
    device_id       text NOT NULL,
    member_id       uuid,
    -- Privacy: IPv4 truncated to /24, IPv6 to /48; location rounded to about 1 km.
    ip_prefix       inet,
    lat             numeric(7, 2),
    lng             numeric(7, 2),
    ua_family       text,
    PRIMARY KEY (id, scanned_at)
) PARTITION BY RANGE (scanned_at);
CREATE INDEX scans_code ON scans (brand_id, key_id, code_index, scanned_at);
CREATE INDEX scans_brand_time ON scans (brand_id, scanned_at);
CREATE INDEX scans_batch ON scans (batch_id, scanned_at);
CREATE INDEX scans_member ON scans (member_id, scanned_at) WHERE member_id IS NOT NULL;

-- Codes that failed verification: intelligence on forgers, logged cheaply and rate-limited per source.
CREATE TABLE counterfeit_scans (
    id                uuid NOT NULL,
    scanned_at        timestamptz NOT NULL,
    claimed_brand_id  uuid,
    outcome           text NOT NULL,
    code              text NOT NULL CHECK (length(code) <= 512),
    device_id         text NOT NULL,
    ip_prefix         inet,
    lat               numeric(7, 2),
    lng               numeric(7, 2),
    ua_family         text,
    PRIMARY KEY (id, scanned_at)
) PARTITION BY RANGE (scanned_at);
CREATE INDEX counterfeit_scans_brand_time ON counterfeit_scans (claimed_brand_id, scanned_at);

-- A retried request with the same Idempotency-Key (per device) has one effect and one answer.
CREATE TABLE scan_idempotency (
    device_id     text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash  bytea NOT NULL,
    response      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, key)
);
CREATE INDEX scan_idempotency_created ON scan_idempotency (created_at);

-- Creates the monthly partitions of the scan tables from the current month to `months_ahead` ahead.
CREATE FUNCTION ensure_scan_partitions(months_ahead integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    created integer := 0;
    parent text;
    partition_name text;
BEGIN
    FOR step IN 0..months_ahead LOOP
        month_start := (date_trunc('month', now()) + make_interval(months => step))::date;
        FOREACH parent IN ARRAY ARRAY['scans', 'counterfeit_scans'] LOOP
            partition_name := format('%s_%s', parent, to_char(month_start, 'YYYYMM'));
            IF to_regclass(partition_name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    partition_name, parent, month_start, (month_start + interval '1 month')::date
                );
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;
SELECT ensure_scan_partitions(2);

-- The development SMS adapter's outbox: what would have been sent (OTP codes for local testing).
CREATE TABLE sms_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL,
    phone_index bytea NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
