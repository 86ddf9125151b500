-- Segments as campaign eligibility: the members of each segment a live campaign names, kept by the
-- member refresh (touched members every minute, the whole segment when new, edited, or once a day).
CREATE TABLE segment_memberships (
    segment_id  uuid NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    member_id   uuid NOT NULL,
    PRIMARY KEY (segment_id, member_id)
);
CREATE INDEX segment_memberships_member ON segment_memberships (member_id);

-- When the memberships were last computed in full; older than updated_at: compute them again.
ALTER TABLE segments ADD COLUMN members_computed_at timestamptz;
