-- A tier's draw weight bonus: the prize weights a member's draw used (the no-prize weight unchanged),
-- recorded so that verify-draws recomputes each outcome with the same weights.
ALTER TABLE draws ADD COLUMN weight_bonus_pct smallint NOT NULL DEFAULT 0 CHECK (weight_bonus_pct BETWEEN 0 AND 1000);
