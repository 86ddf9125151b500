-- Member events (triggers), their outbox, brands' webhooks and the delivery log.

-- The birthday's month and day (MMDD, e.g. 501 for 1 May), in clear so the daily birthday trigger finds
-- today's members without opening every sealed profile. Without the year it says little about a person;
-- it goes with the profile on erasure.
ALTER TABLE members ADD COLUMN birthday_md smallint CHECK (birthday_md BETWEEN 101 AND 1231);
CREATE INDEX members_birthday ON members (brand_id, birthday_md)
    WHERE birthday_md IS NOT NULL AND erased_at IS NULL;

-- Lifecycle stage changes, written by the statistics refresh: the facts behind the dormancy and
-- reactivation events.
CREATE TABLE member_lifecycle_changes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id        uuid NOT NULL,
    member_id       uuid NOT NULL,
    from_lifecycle  text NOT NULL,
    to_lifecycle    text NOT NULL,
    changed_at      timestamptz NOT NULL,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_lifecycle_changes_at ON member_lifecycle_changes (changed_at);
CREATE INDEX member_lifecycle_changes_member ON member_lifecycle_changes (member_id, id);

-- The events step reads the tier changes each refresh wrote, by their timestamp.
CREATE INDEX member_tier_changes_at ON member_tier_changes (changed_at);

-- Per-brand event settings; a brand without a row uses the defaults.
CREATE TABLE member_event_settings (
    brand_id            uuid PRIMARY KEY REFERENCES brands (id),
    -- points_expiring fires this many days before a member's points lapse.
    expiry_notice_days  integer NOT NULL DEFAULT 30 CHECK (expiry_notice_days BETWEEN 1 AND 365),
    -- The brand's calendar: which day is a member's birthday, on which date points lapse.
    time_zone           text NOT NULL DEFAULT 'Asia/Shanghai',
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A member event's id is a name-based UUID (version 3) of brand, type, member and the fact's key (the
-- tier change, the year of the birthday...): generating the same fact twice yields the same id, which
-- the primary key turns into a no-op. Receivers may rely on it to drop a redelivered event.
-- Python: uuid.uuid3(uuid.UUID('26977301-46a0-534a-b26e-144ff613db85'), f"{brand}/{type}/{member}/{key}").
CREATE FUNCTION member_event_id(brand_id uuid, type text, member_id uuid, fact_key text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(set_byte(set_byte(h, 6, (get_byte(h, 6) & 15) | 48), 8, (get_byte(h, 8) & 63) | 128),
                  'hex')::uuid
    FROM (SELECT decode(md5('\x2697730146a0534ab26e144ff613db85'::bytea
                            || convert_to(brand_id::text || '/' || type || '/' || member_id::text || '/'
                                          || fact_key, 'UTF8')), 'hex') AS h) AS digest
$$;

-- The outbox: one row per fact, never a name or a phone number in `data`.
CREATE TABLE member_events (
    id             uuid PRIMARY KEY,
    -- Arrival order, for paging through the outbox.
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    brand_id       uuid NOT NULL,
    member_id      uuid NOT NULL,
    type           text NOT NULL CHECK (type IN ('first_scan', 'tier_change', 'dormancy_reached',
                                                 'reactivated', 'points_expiring', 'birthday')),
    fact_key       text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    -- Set once the event's deliveries exist; the rows without are the ones still to fan out.
    fanned_out_at  timestamptz,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX member_events_brand ON member_events (brand_id, seq);
CREATE INDEX member_events_member ON member_events (member_id, seq);
CREATE INDEX member_events_unsent ON member_events (seq) WHERE fanned_out_at IS NULL;

-- A brand's receivers. The signing secret is sealed under the master key and shown once, at creation.
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id        uuid NOT NULL REFERENCES brands (id),
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret_sealed   bytea NOT NULL,
    -- NULL: every event type, including types added later.
    event_types     text[] CHECK (cardinality(event_types) > 0),
    description     text CHECK (length(description) <= 200),
    active          boolean NOT NULL DEFAULT true,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz,
    CHECK (active = (deactivated_at IS NULL)),
    UNIQUE (brand_id, id)
);
CREATE INDEX webhooks_brand ON webhooks (brand_id) WHERE active;

-- The delivery log: one row per event and receiver (a webhook, or the member's phone by SMS).
CREATE TABLE member_event_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id          uuid NOT NULL,
    event_id          uuid NOT NULL REFERENCES member_events (id),
    channel           text NOT NULL CHECK (channel IN ('webhook', 'sms')),
    webhook_id        uuid,
    -- failed: gave up (the receiver kept failing past give_up_at); cancelled: the webhook was deleted,
    -- or the member withdrew consent, before it went out.
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts          integer NOT NULL DEFAULT 0,
    -- While an attempt is in flight this is the end of its lease: another worker may take it after.
    next_attempt_at   timestamptz NOT NULL,
    give_up_at        timestamptz NOT NULL,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
    FOREIGN KEY (brand_id, webhook_id) REFERENCES webhooks (brand_id, id),
    UNIQUE (event_id, webhook_id)
);
CREATE UNIQUE INDEX member_event_deliveries_sms ON member_event_deliveries (event_id) WHERE channel = 'sms';
CREATE INDEX member_event_deliveries_due ON member_event_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX member_event_deliveries_webhook ON member_event_deliveries (webhook_id, id);

-- Every attempt, kept: what the receiver answered, or why nothing came back.
CREATE TABLE member_event_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES member_event_deliveries (id),
    attempted_at  timestamptz NOT NULL,
    status_code   integer,
    error         text,
    duration_ms   integer NOT NULL
);
CREATE INDEX member_event_attempts_delivery ON member_event_attempts (delivery_id, id);
