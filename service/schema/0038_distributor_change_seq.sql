-- Scan workers keep each distributor's territory in memory, beside the activations that name the
-- distributor: a change of regions stamps the registry sequence, so every worker reloads that one row
-- (a distributor may have millions of shipped items; its activations are not rewritten).
ALTER TABLE distributors ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
-- Numbered like every other registry row: a first load asks for change_seq > 0.
UPDATE distributors SET change_seq = nextval('registry_change_seq');
-- Only the regions matter to a scan worker; a rename reloads nothing.
CREATE TRIGGER distributors_change BEFORE INSERT OR UPDATE OF regions ON distributors
    FOR EACH ROW EXECUTE FUNCTION stamp_registry_change();
CREATE INDEX distributors_change_seq ON distributors (change_seq);
