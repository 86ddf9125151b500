-- public_tables --
-- What `onecode restore` finds in a target and counts once it is restored.
SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
ORDER BY relname;

-- server_bindir --
-- Where the running server's own binaries are (the embedded engine's pg_dump has its version).
SELECT setting FROM pg_config WHERE name = 'BINDIR';

-- analyze --
-- pg_restore leaves the planner without statistics: reports would get poor plans until autovacuum.
ANALYZE;

-- count_rows --
-- {table} is an identifier, composed with psycopg.sql.Identifier.
SELECT count(*) FROM {table};

-- clean_public_schema --
-- `restore --clean`: drop every table, view, sequence, routine and type of schema public (not extensions'
-- objects), in the restore's own transaction, as one DO block written to psql before the dump's script.
-- pg_restore --clean cannot do this for OneCode: it drops a partition's primary key before the parent's
-- ("cannot drop inherited constraint"), and without CASCADE it fails on objects a newer schema added.
DO $clean$
DECLARE
    statement text;
BEGIN
    FOREACH statement IN ARRAY ARRAY(
        SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
                      CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                     WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
        UNION ALL
        SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')
        UNION ALL
        SELECT format('DROP TYPE IF EXISTS %s CASCADE', t.oid::regtype)
        FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('d', 'e', 'r')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                          AND d.deptype = 'e')
    ) LOOP
        EXECUTE statement;
    END LOOP;
END
$clean$;
