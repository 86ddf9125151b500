-- Importing an existing member list (phone, name, birthday, points balance): resumable and idempotent.

-- One import per brand and key (by default the file's SHA-256): running it again skips every row done.
CREATE TABLE member_imports (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id      uuid NOT NULL REFERENCES brands (id),
    import_key    text NOT NULL CHECK (length(import_key) BETWEEN 1 AND 128),
    filename      text CHECK (length(filename) <= 200),
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    rows_total    integer NOT NULL DEFAULT 0,
    created       integer NOT NULL DEFAULT 0,
    merged        integer NOT NULL DEFAULT 0,
    duplicates    integer NOT NULL DEFAULT 0,
    rejected      integer NOT NULL DEFAULT 0,
    points_credited bigint NOT NULL DEFAULT 0,
    created_by    text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    UNIQUE (brand_id, import_key),
    UNIQUE (brand_id, id)
);

-- What became of each row; a rejected row keeps its original cells, sealed (they may hold a phone).
CREATE TABLE member_import_rows (
    import_id    uuid NOT NULL REFERENCES member_imports (id) ON DELETE CASCADE,
    row_number   integer NOT NULL CHECK (row_number >= 1),
    outcome      text NOT NULL CHECK (outcome IN ('created', 'merged', 'duplicate', 'rejected')),
    member_id    uuid,
    error        text,
    raw_sealed   bytea,
    PRIMARY KEY (import_id, row_number)
);

-- An opening balance is credited once per member, whatever file or key brings it again.
CREATE TABLE member_opening_balances (
    brand_id     uuid NOT NULL,
    member_id    uuid NOT NULL,
    import_id    uuid NOT NULL REFERENCES member_imports (id),
    points       integer NOT NULL CHECK (points > 0),
    credited_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, member_id),
    FOREIGN KEY (brand_id, member_id) REFERENCES members (brand_id, id)
);
