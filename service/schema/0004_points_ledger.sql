-- Points: an append-only ledger (the history) and lots (what is left of each earning, consumed FIFO).
-- The balance is derived: sum(ledger.amount) = sum(lots.remaining), and no lot ever goes below zero.

CREATE TABLE points_lots (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL,
    member_id   uuid NOT NULL,
    amount      integer NOT NULL CHECK (amount > 0),
    remaining   integer NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    earned_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > earned_at),
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX points_lots_open ON points_lots (member_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX points_lots_expiring ON points_lots (expires_at) WHERE remaining > 0;

CREATE TABLE points_ledger (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid NOT NULL,
    member_id   uuid NOT NULL,
    amount      integer NOT NULL CHECK (amount <> 0),
    kind        text NOT NULL CHECK (kind IN ('earn', 'redeem', 'expire', 'adjust')),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    -- What caused it: a scan id, a campaign, an order, a staff member's adjustment.
    source      text NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    lot_id      bigint REFERENCES points_lots (id),
    actor       text,
    created_at  timestamptz NOT NULL,
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
CREATE INDEX points_ledger_member ON points_ledger (member_id, id);

CREATE TRIGGER points_ledger_no_update BEFORE UPDATE OR DELETE ON points_ledger
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER points_ledger_no_truncate BEFORE TRUNCATE ON points_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
