-- 0002_users_rbac.sql
-- Seed section 2: roles (with default rows), users, permissions_matrix.
-- uuid_generate_v4() -> gen_random_uuid(); users.mfa_secret holds application-side
-- AES-256-GCM ciphertext as BYTEA (seed: TEXT). See storage/SCHEMA.md.

-- =============================================================================
-- TABLE: roles
-- =============================================================================

CREATE TABLE IF NOT EXISTS roles (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(50) NOT NULL,
    description     TEXT,
    permissions     JSONB NOT NULL DEFAULT '{}',
    -- Expected permissions structure:
    -- {
    --   "cameras": {"read": true, "write": true, "delete": false},
    --   "events": {"read": true, "acknowledge": true},
    --   "persons": {"read": true, "write": true, "merge": false},
    --   "alerts": {"read": true, "configure": true},
    --   "sites": {"read": true, "write": false},
    --   "system": {"read": true, "configure": false},
    --   "training": {"read": true, "trigger": false},
    --   "users": {"read": true, "write": false}
    -- }
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT uq_roles_name UNIQUE (name)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_roles_name ON roles (name);

-- Comments
COMMENT ON TABLE roles IS 'RBAC role definitions with JSON permissions matrix';
COMMENT ON COLUMN roles.permissions IS 'JSONB permissions matrix: resource -> {action: boolean}';

-- Default roles (idempotent)
INSERT INTO roles (name, description, permissions) VALUES
('super_admin', 'Full platform access', '{"cameras":{"read":true,"write":true,"delete":true},"events":{"read":true,"acknowledge":true,"delete":true},"persons":{"read":true,"write":true,"delete":true,"merge":true},"alerts":{"read":true,"configure":true},"sites":{"read":true,"write":true,"delete":true},"system":{"read":true,"configure":true},"training":{"read":true,"trigger":true,"approve":true},"users":{"read":true,"write":true,"delete":true},"audit":{"read":true},"media":{"read":true,"delete":true}}'::JSONB),
('admin', 'Administrative access', '{"cameras":{"read":true,"write":true,"delete":false},"events":{"read":true,"acknowledge":true,"delete":false},"persons":{"read":true,"write":true,"delete":false,"merge":true},"alerts":{"read":true,"configure":true},"sites":{"read":true,"write":true,"delete":false},"system":{"read":true,"configure":false},"training":{"read":true,"trigger":true,"approve":false},"users":{"read":true,"write":true,"delete":false},"audit":{"read":true},"media":{"read":true,"delete":false}}'::JSONB),
('operator', 'Day-to-day operations', '{"cameras":{"read":true,"write":false,"delete":false},"events":{"read":true,"acknowledge":true,"delete":false},"persons":{"read":true,"write":true,"delete":false,"merge":false},"alerts":{"read":true,"configure":false},"sites":{"read":true,"write":false,"delete":false},"system":{"read":false,"configure":false},"training":{"read":true,"trigger":false,"approve":false},"users":{"read":false,"write":false,"delete":false},"audit":{"read":false},"media":{"read":true,"delete":false}}'::JSONB),
('viewer', 'Read-only access', '{"cameras":{"read":true,"write":false,"delete":false},"events":{"read":true,"acknowledge":false,"delete":false},"persons":{"read":true,"write":false,"delete":false,"merge":false},"alerts":{"read":true,"configure":false},"sites":{"read":true,"write":false,"delete":false},"system":{"read":false,"configure":false},"training":{"read":false,"trigger":false,"approve":false},"users":{"read":false,"write":false,"delete":false},"audit":{"read":false},"media":{"read":true,"delete":false}}'::JSONB)
ON CONFLICT (name) DO NOTHING;

-- =============================================================================
-- TABLE: users
-- =============================================================================

CREATE TABLE IF NOT EXISTS users (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username        VARCHAR(50) NOT NULL,
    email           VARCHAR(255) NOT NULL,
    password_hash   TEXT NOT NULL,              -- bcrypt hash, never store plaintext
    role_id         UUID NOT NULL,
    mfa_enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    mfa_secret      BYTEA,                      -- AES-256-GCM ciphertext (application-side)
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    last_login      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT uq_users_username UNIQUE (username),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT fk_users_role
        FOREIGN KEY (role_id)
        REFERENCES roles (id)
        ON DELETE RESTRICT                          -- Prevent deleting roles with users
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_users_username ON users (username);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_role_id ON users (role_id);
CREATE INDEX IF NOT EXISTS idx_users_is_active ON users (is_active) WHERE is_active = TRUE;
CREATE INDEX IF NOT EXISTS idx_users_last_login ON users (last_login);

-- Comments
COMMENT ON TABLE users IS 'Platform admin and operator accounts';
COMMENT ON COLUMN users.password_hash IS 'bcrypt hashed password - minimum cost 12';
COMMENT ON COLUMN users.mfa_secret IS
    'TOTP secret encrypted by the application with AES-256-GCM (BYTEA: nonce, ciphertext and tag as laid out by the application crypto module); the key never enters the database. Redacted from audit_logs.';

-- Trigger: auto-update updated_at
DROP TRIGGER IF EXISTS trg_users_updated_at ON users;
CREATE TRIGGER trg_users_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: permissions_matrix
-- =============================================================================

CREATE TABLE IF NOT EXISTS permissions_matrix (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    role_id         UUID NOT NULL,
    resource        VARCHAR(50) NOT NULL,       -- cameras, events, persons, alerts, etc.
    action          VARCHAR(50) NOT NULL,       -- read, write, delete, configure, etc.
    granted         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT uq_permissions_role_resource_action UNIQUE (role_id, resource, action),
    CONSTRAINT fk_permissions_role
        FOREIGN KEY (role_id)
        REFERENCES roles (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_permissions_matrix_role_id ON permissions_matrix (role_id);
CREATE INDEX IF NOT EXISTS idx_permissions_matrix_resource ON permissions_matrix (resource);
CREATE INDEX IF NOT EXISTS idx_permissions_matrix_lookup ON permissions_matrix (role_id, resource, action);

-- Comments
COMMENT ON TABLE permissions_matrix IS 'Normalized permission grants for fast middleware lookups';
