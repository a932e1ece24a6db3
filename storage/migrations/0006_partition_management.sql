-- 0006_partition_management.sql
-- Our replacement for pg_partman (not available in the embedded PostgreSQL) and
-- for the seed's broken fn_drop_old_partitions (seed sections 15 and 17).
-- Created before the partitioned tables (0007, 0013, 0014) because their
-- migrations call fn_create_monthly_partition() for the current and next month.
--
-- Conventions
--   * Monthly RANGE partitions on the table's single partition-key column
--     ("timestamp" for all five tables), named <table>_yYYYYmMM, bounds are UTC
--     month starts: FROM ('YYYY-MM-01 00:00:00+00') TO (next month).
--   * Every partitioned table has a DEFAULT partition <table>_default.
--   * The scheduler and `vigil db partitions` call fn_maintain_partitions().

-- =============================================================================
-- TABLE: partition_retention
-- =============================================================================

CREATE TABLE IF NOT EXISTS partition_retention (
    table_name  TEXT PRIMARY KEY,               -- partitioned table (unqualified, schema of the app)
    retention   INTERVAL NOT NULL,              -- drop partitions whose upper bound <= now() - retention
    premake     INTEGER NOT NULL DEFAULT 2,     -- future monthly partitions kept ready

    CONSTRAINT chk_partition_retention_name CHECK (table_name ~ '^[a-z_][a-z0-9_]*$'),
    CONSTRAINT chk_partition_retention_positive CHECK (retention > INTERVAL '0'),
    CONSTRAINT chk_partition_retention_premake CHECK (premake BETWEEN 0 AND 24)
);

COMMENT ON TABLE partition_retention IS
    'Retention and premake per monthly-partitioned table (replaces pg_partman part_config); read by fn_maintain_partitions()';
COMMENT ON COLUMN partition_retention.retention IS 'Partitions whose upper bound is <= now() - retention are dropped; rows older than that in the DEFAULT partition are deleted';
COMMENT ON COLUMN partition_retention.premake IS 'Number of future monthly partitions created beyond the current month';

-- Seed section 17 retention table.
INSERT INTO partition_retention (table_name, retention, premake) VALUES
    ('events',                     INTERVAL '12 months', 2),
    ('suspicious_activity_events', INTERVAL '24 months', 2),
    ('audit_logs',                 INTERVAL '36 months', 2),
    ('system_health_logs',         INTERVAL '90 days',   2),
    ('device_connectivity_logs',   INTERVAL '90 days',   2)
ON CONFLICT (table_name) DO NOTHING;

-- =============================================================================
-- FUNCTION: fn_create_monthly_partition
-- Seed function made idempotent and robust:
--   * returns the existing partition if it is already attached to the table;
--   * errors if a relation of that name exists but is not a partition of it;
--   * bounds are UTC month starts (independent of the session TimeZone);
--   * if rows for the month already sit in the DEFAULT partition (which makes a
--     plain CREATE TABLE ... PARTITION OF fail), they are moved: a standalone
--     table is created, the rows are moved into it, then it is ATTACHed (attach
--     does not fire row triggers, so no duplicate alerts);
--   * the application role vigil_app gets no privileges on the partition (access
--     goes through the parent so that row-level security applies).
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_create_monthly_partition(
    p_table_name TEXT,
    p_year INTEGER,
    p_month INTEGER
)
RETURNS TEXT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_parent          REGCLASS;
    v_schema          TEXT;
    v_parent_name     TEXT;
    v_key             TEXT;
    v_default_oid     OID;
    v_default_name    TEXT;
    v_partition_name  TEXT;
    v_existing_oid    OID;
    v_existing_parent OID;
    v_start           TIMESTAMPTZ;
    v_end             TIMESTAMPTZ;
    v_start_txt       TEXT;
    v_end_txt         TEXT;
    v_has_rows        BOOLEAN := FALSE;
    v_moved           BIGINT := 0;
BEGIN
    IF p_year IS NULL OR p_year NOT BETWEEN 1970 AND 9998 THEN
        RAISE EXCEPTION 'fn_create_monthly_partition: year % out of range', p_year
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_month IS NULL OR p_month NOT BETWEEN 1 AND 12 THEN
        RAISE EXCEPTION 'fn_create_monthly_partition: month % out of range 1..12', p_month
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_parent := to_regclass(p_table_name);
    IF v_parent IS NULL THEN
        RAISE EXCEPTION 'fn_create_monthly_partition: table % does not exist', p_table_name
            USING ERRCODE = 'undefined_table';
    END IF;

    SELECT n.nspname, c.relname INTO v_schema, v_parent_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = v_parent;

    SELECT a.attname, pt.partdefid INTO v_key, v_default_oid
    FROM pg_partitioned_table pt
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
    WHERE pt.partrelid = v_parent AND pt.partstrat = 'r' AND pt.partnatts = 1;
    IF v_key IS NULL THEN
        RAISE EXCEPTION 'fn_create_monthly_partition: % is not range-partitioned on one column', p_table_name
            USING ERRCODE = 'wrong_object_type';
    END IF;

    v_partition_name := format('%s_y%sm%s', v_parent_name, lpad(p_year::TEXT, 4, '0'), lpad(p_month::TEXT, 2, '0'));
    IF octet_length(v_partition_name) > 63 THEN
        RAISE EXCEPTION 'fn_create_monthly_partition: partition name % exceeds 63 bytes', v_partition_name
            USING ERRCODE = 'name_too_long';
    END IF;

    -- One maintainer at a time (re-entrant within a transaction).
    PERFORM pg_advisory_xact_lock(hashtext('vigil.partition_maintenance'));

    SELECT c.oid, i.inhparent INTO v_existing_oid, v_existing_parent
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
    WHERE n.nspname = v_schema AND c.relname = v_partition_name;

    IF v_existing_oid IS NOT NULL THEN
        IF v_existing_parent IS DISTINCT FROM v_parent::OID THEN
            RAISE EXCEPTION 'fn_create_monthly_partition: relation %.% exists but is not a partition of %',
                v_schema, v_partition_name, v_parent_name
                USING ERRCODE = 'duplicate_table';
        END IF;
        RETURN v_partition_name;
    END IF;

    -- UTC month bounds, computed without timestamptz month arithmetic (which would
    -- follow the session TimeZone and shift across DST changes).
    v_start := make_date(p_year, p_month, 1)::TIMESTAMP AT TIME ZONE 'UTC';
    v_end   := (make_date(p_year, p_month, 1) + INTERVAL '1 month')::TIMESTAMP AT TIME ZONE 'UTC';
    v_start_txt := to_char(v_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';
    v_end_txt   := to_char(v_end   AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';

    -- Block concurrent writers while we look at and possibly move default rows.
    EXECUTE format('LOCK TABLE %I.%I IN SHARE ROW EXCLUSIVE MODE', v_schema, v_parent_name);

    IF v_default_oid IS NOT NULL AND v_default_oid <> 0 THEN
        SELECT relname INTO v_default_name FROM pg_class WHERE oid = v_default_oid;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %I >= %L AND %I < %L)',
                       v_schema, v_default_name, v_key, v_start_txt, v_key, v_end_txt)
            INTO v_has_rows;
    END IF;

    IF NOT v_has_rows THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       v_schema, v_partition_name, v_schema, v_parent_name, v_start_txt, v_end_txt);
    ELSE
        -- Rows of this month are in the DEFAULT partition: move them.
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
                       v_schema, v_partition_name, v_schema, v_parent_name);
        -- Matching CHECK lets ATTACH skip the validation scan of the new table.
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I >= %L AND %I < %L)',
                       v_schema, v_partition_name, v_partition_name || '_bound',
                       v_key, v_key, v_start_txt, v_key, v_end_txt);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= %L AND %I < %L RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       v_schema, v_default_name, v_key, v_start_txt, v_key, v_end_txt,
                       v_schema, v_partition_name);
        GET DIAGNOSTICS v_moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       v_schema, v_parent_name, v_schema, v_partition_name, v_start_txt, v_end_txt);
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
                       v_schema, v_partition_name, v_partition_name || '_bound');
        RAISE NOTICE 'fn_create_monthly_partition: moved % row(s) from %.% into %.%',
            v_moved, v_schema, v_default_name, v_schema, v_partition_name;
    END IF;

    -- Partitions are reached through the parent only (RLS lives on the parent).
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_app') THEN
        EXECUTE format('REVOKE ALL ON %I.%I FROM vigil_app', v_schema, v_partition_name);
    END IF;

    RETURN v_partition_name;
END;
$$;

COMMENT ON FUNCTION fn_create_monthly_partition(TEXT, INTEGER, INTEGER) IS
    'Create (idempotently) the monthly UTC range partition <table>_yYYYYmMM, moving rows of that month out of the DEFAULT partition if needed; returns the partition name';

-- =============================================================================
-- FUNCTION: fn_expired_partitions
-- Lists the non-default partitions of a table whose upper bound is <= now() - retention.
-- Bounds are read from pg_class.relpartbound (pg_get_expr), never compared as strings;
-- the DEFAULT partition and MAXVALUE bounds are never listed.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_expired_partitions(
    p_table_name TEXT,
    p_retention_interval INTERVAL
)
RETURNS TABLE (partition_schema TEXT, partition_name TEXT, range_end TIMESTAMPTZ)
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_parent REGCLASS;
BEGIN
    IF p_retention_interval IS NULL OR p_retention_interval <= INTERVAL '0' THEN
        RAISE EXCEPTION 'fn_expired_partitions: retention must be a positive interval'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_parent := to_regclass(p_table_name);
    IF v_parent IS NULL THEN
        RAISE EXCEPTION 'fn_expired_partitions: table % does not exist', p_table_name
            USING ERRCODE = 'undefined_table';
    END IF;

    RETURN QUERY
    SELECT b.nspname::TEXT, b.relname::TEXT, b.upper_bound
    FROM (
        SELECT n.nspname, c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             $re$TO \('([^']+)'\)$re$))[1]::TIMESTAMPTZ AS upper_bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
        WHERE i.inhparent = v_parent
          AND c.oid <> pt.partdefid
          AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
    ) b
    WHERE b.upper_bound IS NOT NULL
      AND b.upper_bound <= NOW() - p_retention_interval
    ORDER BY b.upper_bound;
END;
$$;

COMMENT ON FUNCTION fn_expired_partitions(TEXT, INTERVAL) IS
    'Non-default partitions of a range-partitioned table whose upper bound (from relpartbound) is <= now() - retention';

-- =============================================================================
-- FUNCTION: fn_drop_old_partitions
-- Valid replacement of the seed function (whose SQL had a FROM after the WHERE and
-- compared partition bounds as strings). Same signature and return value (count).
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_drop_old_partitions(
    p_table_name TEXT,
    p_retention_interval INTERVAL
)
RETURNS INTEGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_partition RECORD;
    v_dropped INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vigil.partition_maintenance'));
    FOR v_partition IN
        SELECT * FROM fn_expired_partitions(p_table_name, p_retention_interval)
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I.%I', v_partition.partition_schema, v_partition.partition_name);
        v_dropped := v_dropped + 1;
    END LOOP;
    RETURN v_dropped;
END;
$$;

COMMENT ON FUNCTION fn_drop_old_partitions(TEXT, INTERVAL) IS
    'Drop the partitions of a table whose upper bound is <= now() - retention (never the DEFAULT partition); returns how many were dropped';

-- =============================================================================
-- FUNCTION: fn_maintain_partitions
-- For every table in partition_retention: create the current month and `premake`
-- future months (UTC), drop expired partitions, and delete rows older than the
-- retention from the DEFAULT partition. Returns one row per change.
-- Called by the scheduler (once across replicas) and by `vigil db partitions`.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_maintain_partitions()
RETURNS TABLE (table_name TEXT, action TEXT, partition_name TEXT)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_cfg       RECORD;
    v_old       RECORD;
    v_parent    REGCLASS;
    v_month     DATE;
    v_name      TEXT;
    v_key       TEXT;
    v_default   TEXT;
    v_deleted   BIGINT;
    i           INTEGER;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vigil.partition_maintenance'));

    FOR v_cfg IN
        SELECT pr.table_name AS tname, pr.retention AS retention, pr.premake AS premake
        FROM partition_retention pr
        ORDER BY pr.table_name
    LOOP
        v_parent := to_regclass(v_cfg.tname);
        IF v_parent IS NULL OR NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = v_parent) THEN
            table_name := v_cfg.tname; action := 'skipped_not_partitioned'; partition_name := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- Current month and `premake` months ahead (UTC).
        FOR i IN 0 .. v_cfg.premake LOOP
            v_month := (date_trunc('month', NOW() AT TIME ZONE 'UTC') + make_interval(months => i))::DATE;
            v_name := format('%s_y%sm%s', v_cfg.tname,
                             to_char(v_month, 'YYYY'), to_char(v_month, 'MM'));
            IF to_regclass(quote_ident(v_name)) IS NULL THEN
                PERFORM fn_create_monthly_partition(v_cfg.tname,
                                                    EXTRACT(YEAR FROM v_month)::INTEGER,
                                                    EXTRACT(MONTH FROM v_month)::INTEGER);
                table_name := v_cfg.tname; action := 'created'; partition_name := v_name;
                RETURN NEXT;
            END IF;
        END LOOP;

        -- Expired partitions.
        FOR v_old IN SELECT * FROM fn_expired_partitions(v_cfg.tname, v_cfg.retention) LOOP
            EXECUTE format('DROP TABLE IF EXISTS %I.%I', v_old.partition_schema, v_old.partition_name);
            table_name := v_cfg.tname; action := 'dropped'; partition_name := v_old.partition_name;
            RETURN NEXT;
        END LOOP;

        -- Expired rows that landed in the DEFAULT partition.
        SELECT a.attname, d.relname INTO v_key, v_default
        FROM pg_partitioned_table pt
        JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
        LEFT JOIN pg_class d ON d.oid = pt.partdefid
        WHERE pt.partrelid = v_parent;
        IF v_default IS NOT NULL THEN
            EXECUTE format('DELETE FROM %I WHERE %I < %L',
                           v_default, v_key, NOW() - v_cfg.retention);
            GET DIAGNOSTICS v_deleted = ROW_COUNT;
            IF v_deleted > 0 THEN
                RAISE NOTICE 'fn_maintain_partitions: deleted % expired row(s) from %', v_deleted, v_default;
                table_name := v_cfg.tname; action := 'purged_default'; partition_name := v_default;
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION fn_maintain_partitions() IS
    'Create current + premake monthly partitions and drop expired ones for every table in partition_retention; returns (table_name, action created|dropped|purged_default|skipped_not_partitioned, partition_name)';
