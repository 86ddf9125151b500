-- Prize fulfilment: the brand's operations staff mark a claimed physical prize shipped, once, with the
-- courier and its tracking number; the winner sees them, and can no longer change the address.
ALTER TABLE prize_claims
    ADD COLUMN shipped_at      timestamptz,
    ADD COLUMN carrier         text CHECK (length(carrier) BETWEEN 1 AND 40),
    ADD COLUMN tracking_number text CHECK (length(tracking_number) BETWEEN 4 AND 40),
    -- The three come together, and only with the shipped status. A claim set to shipped before this
    -- migration (by hand: there was no other way) keeps them empty.
    ADD CONSTRAINT prize_claims_shipment CHECK (
        (shipped_at IS NULL) = (carrier IS NULL)
        AND (carrier IS NULL) = (tracking_number IS NULL)
        AND (status = 'shipped' OR shipped_at IS NULL)
    );
