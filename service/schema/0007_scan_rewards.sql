-- Rewards given to scans: points campaigns and lucky draws, decided in the scan's own transaction.

-- A code earns at most one reward: the one scan of it that campaigns rewarded (or drew for).
ALTER TABLE code_claims ADD COLUMN rewarded_scan_id uuid;

-- One row per points award: the ledger holds the member's side, this the campaign's.
CREATE TABLE points_awards (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id),
    scan_id      uuid NOT NULL,
    member_id    uuid NOT NULL,
    points       integer NOT NULL CHECK (points > 0),
    cost_cents   bigint NOT NULL CHECK (cost_cents >= 0),
    day          date NOT NULL,
    awarded_at   timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, scan_id)
);
CREATE INDEX points_awards_member ON points_awards (member_id, campaign_id);

-- The cost of each draw won, so that spend by day adds up from the draws alone.
ALTER TABLE draws ADD COLUMN cost_cents bigint NOT NULL DEFAULT 0 CHECK (cost_cents >= 0);
ALTER TABLE draws ADD COLUMN day date;

-- Cash prizes become payout requests for a payment adapter (the development adapter records them).
CREATE TABLE payout_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id     uuid NOT NULL,
    campaign_id  uuid NOT NULL REFERENCES campaigns (id),
    scan_id      uuid NOT NULL,
    member_id    uuid NOT NULL,
    prize_id     uuid NOT NULL REFERENCES prizes (id),
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, scan_id)
);

-- A physical prize's delivery: the winner's name, phone and address, sealed under the master key.
CREATE TABLE prize_claims (
    campaign_id     uuid NOT NULL,
    scan_id         uuid NOT NULL,
    brand_id        uuid NOT NULL REFERENCES brands (id),
    member_id       uuid NOT NULL,
    address_sealed  bytea NOT NULL,
    status          text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'shipped')),
    claimed_at      timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, scan_id),
    FOREIGN KEY (campaign_id, scan_id) REFERENCES draws (campaign_id, scan_id)
);
