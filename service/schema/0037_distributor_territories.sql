-- Each distributor's territory over time: a diversion report shows the territory a scan was judged
-- against, and an item's story the one it was shipped under, not whatever the territory is today.
CREATE TABLE distributor_territories (
    distributor_id  uuid NOT NULL REFERENCES distributors (id),
    valid_from      timestamptz NOT NULL,
    regions         text[] NOT NULL,
    PRIMARY KEY (distributor_id, valid_from)
);
INSERT INTO distributor_territories (distributor_id, valid_from, regions)
SELECT id, created_at, regions FROM distributors;

-- Kept by the database, whichever statement writes a territory.
CREATE FUNCTION record_distributor_territory() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO distributor_territories (distributor_id, valid_from, regions)
    VALUES (NEW.id, now(), NEW.regions)
    ON CONFLICT (distributor_id, valid_from) DO UPDATE SET regions = excluded.regions;
    RETURN NULL;
END
$$;
CREATE TRIGGER distributors_territory_created AFTER INSERT ON distributors
    FOR EACH ROW EXECUTE FUNCTION record_distributor_territory();
CREATE TRIGGER distributors_territory_changed AFTER UPDATE OF regions ON distributors
    FOR EACH ROW WHEN (OLD.regions IS DISTINCT FROM NEW.regions) EXECUTE FUNCTION record_distributor_territory();
