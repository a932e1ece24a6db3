-- The seed's user_role_enum has 'api_client' but its roles table seeds only four roles: API keys
-- of integrations (pipeline nodes, harnesses) need a role row with a permissions matrix.
INSERT INTO roles (name, description, permissions) VALUES
('api_client', 'Integrations: pipeline nodes publishing metadata, load-test harnesses',
 '{"cameras":{"read":true,"write":false,"delete":false},"events":{"read":true,"acknowledge":false,"delete":false},"persons":{"read":true,"write":false,"delete":false,"merge":false},"alerts":{"read":true,"configure":false},"sites":{"read":true,"write":false,"delete":false},"system":{"read":true,"configure":false},"training":{"read":false,"trigger":false,"approve":false},"users":{"read":false,"write":false,"delete":false},"audit":{"read":false},"media":{"read":true,"write":true,"delete":false},"ingest":{"write":true},"nodes":{"read":true,"write":true}}'::JSONB)
ON CONFLICT (name) DO NOTHING;

-- Pipeline ingest and node management, granted to the roles that run the platform.
UPDATE roles SET permissions = permissions
    || '{"ingest":{"write":true},"nodes":{"read":true,"write":true}}'::JSONB
    || jsonb_build_object('media', COALESCE(permissions->'media', '{}'::JSONB) || '{"write":true}'::JSONB)
WHERE name IN ('super_admin', 'admin') AND NOT permissions ? 'ingest';

-- permissions_matrix is the seed's normalised copy of roles.permissions "for fast middleware
-- lookups"; the seed never fills it. Keep it derived from roles.permissions by a trigger.
CREATE OR REPLACE FUNCTION fn_sync_permissions_matrix()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    DELETE FROM permissions_matrix WHERE role_id = NEW.id;
    INSERT INTO permissions_matrix (role_id, resource, action, granted)
    SELECT NEW.id, res.key, act.key, act.value::BOOLEAN
    FROM jsonb_each(NEW.permissions) AS res, jsonb_each_text(res.value) AS act
    WHERE jsonb_typeof(res.value) = 'object';
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION fn_sync_permissions_matrix() IS 'Rebuilds a role''s permissions_matrix rows from roles.permissions';

DROP TRIGGER IF EXISTS trg_roles_sync_permissions ON roles;
CREATE TRIGGER trg_roles_sync_permissions
    AFTER INSERT OR UPDATE OF permissions ON roles
    FOR EACH ROW EXECUTE FUNCTION fn_sync_permissions_matrix();

-- Fill it for the roles that already exist.
UPDATE roles SET permissions = permissions;
