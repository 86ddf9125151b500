-- A brand whose member rules changed (a new or deleted tag, a new tier ladder, new lifecycle thresholds
-- or tier window) asks for every member to be recomputed by the next minute's refresh, not only the
-- members who scanned since: otherwise the change would reach the others at the nightly run.
-- A queue (rows only added, taken by the refresh): a request never waits for a refresh in progress.
CREATE TABLE member_recompute_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id      uuid NOT NULL REFERENCES brands (id),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    requested_at  timestamptz NOT NULL DEFAULT now()
);

-- The phone (blind index) of an import row that keeps its original cells (a rejected or duplicate
-- row): erasing the member with that phone purges them, whenever the phone became a member's.
ALTER TABLE member_import_rows ADD COLUMN phone_index bytea;
CREATE INDEX member_import_rows_kept_phone ON member_import_rows (phone_index) WHERE raw_sealed IS NOT NULL;
CREATE INDEX member_import_rows_kept_member ON member_import_rows (member_id) WHERE raw_sealed IS NOT NULL;
