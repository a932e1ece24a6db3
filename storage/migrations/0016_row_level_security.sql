-- 0016_row_level_security.sql
-- Seed section 18 (setup order step 16): user_site_assignments, row-level security
-- on events, suspicious_activity_events, alerts, persons, media_files, audit_logs,
-- and the application role vigil_app.
--
-- How the application uses it: connect as the owner/login role, then per request
--     SET ROLE vigil_app;                                   -- (or SET LOCAL ROLE)
--     SELECT set_config('app.current_user_id', '<uuid>', true);
--     SELECT set_config('app.user_role', '<roles.name>', true);
-- Superusers and (for tables without FORCE) the table owner bypass RLS; vigil_app
-- never does. Service components that must see every site set app.user_role to
-- 'super_admin'.
--
-- Deviations (storage/SCHEMA.md): NULLIF(current_setting(...), '')::uuid instead of
-- a bare ::uuid cast (an empty setting must mean "no user", not an error); a
-- site-isolation policy for suspicious_activity_events (the seed enabled RLS on it
-- without any policy, which hides every row from everybody but the owner); an
-- append-only INSERT policy on audit_logs (the seed had SELECT only, so the
-- application could not write audit rows as vigil_app).

-- =============================================================================
-- TABLE: user_site_assignments
-- =============================================================================

CREATE TABLE IF NOT EXISTS user_site_assignments (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     UUID NOT NULL,
    site_id     UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT uq_user_site UNIQUE (user_id, site_id),
    CONSTRAINT fk_usa_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_usa_site FOREIGN KEY (site_id) REFERENCES sites (id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_usa_user ON user_site_assignments (user_id);
CREATE INDEX IF NOT EXISTS idx_usa_site ON user_site_assignments (site_id);

COMMENT ON TABLE user_site_assignments IS 'Junction table for user-to-site access control (RLS)';

-- =============================================================================
-- ROLE: vigil_app (NOLOGIN; the application and tests SET ROLE to it)
-- =============================================================================

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_app') THEN
        CREATE ROLE vigil_app NOLOGIN;
        COMMENT ON ROLE vigil_app IS 'Vigil application role: DML on all tables, subject to row-level security (SET ROLE vigil_app)';
    END IF;
END $$;

-- Let the migrating (login) role SET ROLE vigil_app. Superusers need no membership;
-- where the grant is not permitted a DBA must run GRANT vigil_app TO <login role>.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'vigil_app', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT vigil_app TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            RAISE NOTICE 'could not GRANT vigil_app TO %: a DBA must grant it', current_user;
        END;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO vigil_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO vigil_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO vigil_app;
-- Tables, views and sequences created later by the same (migrating) role.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO vigil_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO vigil_app;

-- Retention is configuration (changed by migrations / the owner via the CLI), not
-- application data: with write access vigil_app could set a retention of seconds and
-- have fn_maintain_partitions() drop every partition. Same for the runner's table.
REVOKE INSERT, UPDATE, DELETE ON partition_retention FROM vigil_app;
DO $$
BEGIN
    IF to_regclass('schema_migrations') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM vigil_app;
    END IF;
END $$;

-- SECURITY DEFINER functions run with the owner's rights: not executable by PUBLIC.
-- vigil_app may run the policy-driven ones; fn_drop_old_partitions (arbitrary
-- retention, could drop audit_logs partitions) stays owner-only.
REVOKE EXECUTE ON FUNCTION fn_drop_old_partitions(TEXT, INTERVAL) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fn_create_monthly_partition(TEXT, INTEGER, INTEGER) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fn_maintain_partitions() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fn_ensure_embedding_index(TEXT, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fn_create_monthly_partition(TEXT, INTEGER, INTEGER) TO vigil_app;
GRANT EXECUTE ON FUNCTION fn_maintain_partitions() TO vigil_app;
GRANT EXECUTE ON FUNCTION fn_ensure_embedding_index(TEXT, INTEGER) TO vigil_app;

-- Partitions are reached through their parent only: RLS is defined on the parent and
-- is NOT applied when a partition is queried directly, so vigil_app gets no
-- privileges on partitions (fn_create_monthly_partition revokes them on new ones).
DO $$
DECLARE
    r RECORD;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname
        FROM pg_inherits i
        JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
    LOOP
        EXECUTE format('REVOKE ALL ON %I.%I FROM vigil_app', r.nspname, r.relname);
    END LOOP;
END $$;

-- =============================================================================
-- ROW-LEVEL SECURITY (RLS) POLICIES
-- =============================================================================

-- Enable RLS on key tables
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE suspicious_activity_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE persons ENABLE ROW LEVEL SECURITY;
ALTER TABLE media_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;

-- Force RLS for table owners too
ALTER TABLE events FORCE ROW LEVEL SECURITY;
ALTER TABLE alerts FORCE ROW LEVEL SECURITY;

-- Policy: Users can only see events from cameras at their assigned sites
DROP POLICY IF EXISTS events_site_isolation ON events;
CREATE POLICY events_site_isolation ON events
    FOR ALL
    TO PUBLIC
    USING (
        camera_id IN (
            SELECT c.id FROM cameras c
            JOIN dvrs d ON c.dvr_id = d.id
            JOIN user_site_assignments usa ON d.site_id = usa.site_id
            WHERE usa.user_id = NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID
        )
        OR current_setting('app.user_role', TRUE) = 'super_admin'
    );

-- Policy: same site isolation for suspicious activity (not in the seed, which
-- enabled RLS on this table without any policy)
DROP POLICY IF EXISTS suspicious_site_isolation ON suspicious_activity_events;
CREATE POLICY suspicious_site_isolation ON suspicious_activity_events
    FOR ALL
    TO PUBLIC
    USING (
        camera_id IN (
            SELECT c.id FROM cameras c
            JOIN dvrs d ON c.dvr_id = d.id
            JOIN user_site_assignments usa ON d.site_id = usa.site_id
            WHERE usa.user_id = NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID
        )
        OR current_setting('app.user_role', TRUE) = 'super_admin'
    );

-- Policy: Users can only see alerts for their accessible cameras
DROP POLICY IF EXISTS alerts_site_isolation ON alerts;
CREATE POLICY alerts_site_isolation ON alerts
    FOR ALL
    TO PUBLIC
    USING (
        camera_id IN (
            SELECT c.id FROM cameras c
            JOIN dvrs d ON c.dvr_id = d.id
            JOIN user_site_assignments usa ON d.site_id = usa.site_id
            WHERE usa.user_id = NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID
        )
        OR current_setting('app.user_role', TRUE) = 'super_admin'
    );

-- Policy: All authenticated users can view persons (with restrictions on blacklisted details)
DROP POLICY IF EXISTS persons_read_access ON persons;
CREATE POLICY persons_read_access ON persons
    FOR SELECT
    TO PUBLIC
    USING (TRUE);

DROP POLICY IF EXISTS persons_write_access ON persons;
CREATE POLICY persons_write_access ON persons
    FOR ALL
    TO PUBLIC
    USING (
        current_setting('app.user_role', TRUE) IN ('super_admin', 'admin', 'operator')
    );

-- Policy: Users can only see media from their accessible cameras
DROP POLICY IF EXISTS media_site_isolation ON media_files;
CREATE POLICY media_site_isolation ON media_files
    FOR ALL
    TO PUBLIC
    USING (
        camera_id IN (
            SELECT c.id FROM cameras c
            JOIN dvrs d ON c.dvr_id = d.id
            JOIN user_site_assignments usa ON d.site_id = usa.site_id
            WHERE usa.user_id = NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID
        )
        OR current_setting('app.user_role', TRUE) = 'super_admin'
    );

-- Policy: Users can only see their own audit logs (or all for admins)
DROP POLICY IF EXISTS audit_logs_user_access ON audit_logs;
CREATE POLICY audit_logs_user_access ON audit_logs
    FOR SELECT
    TO PUBLIC
    USING (
        user_id = NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID
        OR current_setting('app.user_role', TRUE) IN ('super_admin', 'admin')
    );

-- Policy (not in the seed): the application may append audit rows; with no UPDATE
-- or DELETE policy, audit rows cannot be changed or removed through vigil_app.
DROP POLICY IF EXISTS audit_logs_append ON audit_logs;
CREATE POLICY audit_logs_append ON audit_logs
    FOR INSERT
    TO PUBLIC
    WITH CHECK (TRUE);
