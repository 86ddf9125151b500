-- Scan-log retention (monthly partitions past ONECODE_SCAN_RETENTION_MONTHS are dropped) and the index
-- the case/pallet lookups of the reports were missing.

-- Which case holds an item: the diversion report and the review list (a LIMIT 1 lateral per row), the
-- trace and print files ask aggregation_items for the range of a batch that contains a position
-- (`start_index <= position < stop_index`). Without an index on batch_id each such row read the whole
-- table, every brand's cases. Ranges of a batch never overlap (the exclusion constraint), so ordered by
-- stop_index the first range ending after the position is the only candidate: with this index the
-- LIMIT 1 laterals stop at the first entry, where (batch_id, start_index) would walk every range before
-- the position. Building it locks aggregation writes (packing) for the duration, not scans.
CREATE INDEX aggregation_items_batch_stop ON aggregation_items (batch_id, stop_index);

-- Detaches and drops the monthly partitions of `scans` and `counterfeit_scans` whose whole month ended
-- more than `retention_months` months ago (0: keep everything), or with `dry_run` only names them.
-- One row per partition: `dropped`, `would_drop`, or `skipped` (with a NOTICE saying why).
--
-- Why dropping is the honest behaviour here, and where it stops:
-- * No foreign key references either table: their primary keys include scanned_at, so nothing can
--   reference a scan by id alone. The rows that name a scan (code_claims.first_scan_id and
--   rewarded_scan_id, points_awards, draws, coupons, payout_outbox, prize_claims) carry what they need
--   (member, time, amounts) and stay: the one-first-scan-per-code truth, the points ledger, prizes and
--   payouts outlive the log. What goes is the log's detail (device, IP prefix, location, region), which
--   is personal data and the reason for a retention limit. Those old scans then leave the item trace,
--   the reports, and a campaign's `by_region` (where they count as `unknown`).
-- * Should a foreign key to a scan table appear one day, DROP would fail or need CASCADE: such a
--   partition is skipped with a NOTICE rather than guessed about.
-- * A DEFAULT partition (none is created) or one bounded by MINVALUE/MAXVALUE may hold rows of any month:
--   its bound does not parse as a month and it is never touched.
-- * DETACH and DROP take an ACCESS EXCLUSIVE lock on the parent, and a lock request queued behind a
--   long report would hold every scan insert behind it: lock_timeout bounds that wait, and a partition
--   that cannot be locked in time is skipped (NOTICE) until the next hourly run.
-- * Every worker runs this every hour: a transaction-scoped advisory lock lets one do the work.
CREATE FUNCTION drop_expired_scan_partitions(retention_months integer, dry_run boolean DEFAULT false)
RETURNS TABLE (parent text, partition_name text, range_start timestamptz, range_end timestamptz, action text)
LANGUAGE plpgsql SET lock_timeout = '1s' AS $$
DECLARE
    cutoff timestamptz;
    part record;
BEGIN
    IF retention_months IS NULL OR retention_months < 0 THEN
        RAISE EXCEPTION 'retention_months must be 0 (keep forever) or more, got %', retention_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention_months = 0 THEN
        RETURN;
    END IF;
    -- Any constant works; it only has to be the same for every OneCode process sharing a database.
    IF NOT dry_run AND NOT pg_try_advisory_xact_lock(202613) THEN
        RETURN;
    END IF;
    cutoff := now() - make_interval(months => retention_months);
    FOR part IN
        SELECT i.inhparent AS parent_oid, i.inhrelid AS oid, p.relname::text AS parent_name,
               c.relname::text AS child_name, b.range_start, b.range_end
        FROM pg_inherits i
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_class c ON c.oid = i.inhrelid
        CROSS JOIN LATERAL (
            SELECT m[1]::timestamptz AS range_start, m[2]::timestamptz AS range_end
            FROM regexp_match(pg_get_expr(c.relpartbound, c.oid),
                              '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS m
        ) b
        WHERE i.inhparent IN ('scans'::regclass, 'counterfeit_scans'::regclass)
          AND b.range_end <= cutoff
        ORDER BY b.range_start, p.relname
    LOOP
        parent := part.parent_name;
        partition_name := part.child_name;
        range_start := part.range_start;
        range_end := part.range_end;
        IF EXISTS (SELECT 1 FROM pg_constraint
                   WHERE contype = 'f' AND confrelid IN (part.oid, part.parent_oid)) THEN
            RAISE NOTICE 'scan partition % kept: a foreign key references it', part.child_name;
            action := 'skipped';
        ELSIF dry_run THEN
            action := 'would_drop';
        ELSE
            BEGIN
                EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', part.parent_oid::regclass, part.oid::regclass);
                EXECUTE format('DROP TABLE %s', part.oid::regclass);
                action := 'dropped';
            EXCEPTION WHEN lock_not_available THEN
                RAISE NOTICE 'scan partition % kept until the next run: its table is busy', part.child_name;
                action := 'skipped';
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
