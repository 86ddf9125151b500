-- Clone detection's burst rule: scans of one code within a 10-minute window (antifraud.clones).
ALTER TABLE clone_rules ADD COLUMN burst integer NOT NULL DEFAULT 20 CHECK (burst BETWEEN 2 AND 100000);
