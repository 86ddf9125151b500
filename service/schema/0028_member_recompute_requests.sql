-- A brand whose member rules changed (a new rule tag, a new tier ladder, new lifecycle thresholds or
-- tier window) asks for every one of its members to be recomputed by the next minute's refresh, not
-- only the members who scanned since: otherwise the change would reach the others at the nightly run.
CREATE TABLE member_recompute_requests (
    brand_id      uuid PRIMARY KEY REFERENCES brands (id),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    requested_at  timestamptz NOT NULL DEFAULT now()
);
