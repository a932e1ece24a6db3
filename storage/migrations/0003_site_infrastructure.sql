-- 0003_site_infrastructure.sql
-- Seed section 3: sites, dvrs, cameras, camera_zones.
-- DVR credentials are AES-256-GCM ciphertext produced by the application (BYTEA),
-- not pgcrypto (not available in the embedded PostgreSQL). See storage/SCHEMA.md.

-- =============================================================================
-- TABLE: sites
-- =============================================================================

CREATE TABLE IF NOT EXISTS sites (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) NOT NULL,
    address         TEXT,
    timezone        VARCHAR(50) NOT NULL DEFAULT 'UTC',
    -- Valid timezones: 'America/New_York', 'Europe/London', 'Asia/Singapore', etc.
    vpn_config      JSONB,                      -- {"type": "wireguard|openvpn", "endpoint": "...", "config": "..."}
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT uq_sites_name UNIQUE (name)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_sites_name ON sites (name);
CREATE INDEX IF NOT EXISTS idx_sites_timezone ON sites (timezone);

-- Comments
COMMENT ON TABLE sites IS 'Physical surveillance locations hosting DVR/NVR devices';
COMMENT ON COLUMN sites.vpn_config IS
    'Site-specific VPN configuration for secure DVR access. Must not hold private keys in clear (store them encrypted by the application); keys named private_key/preshared_key/secret/password are redacted from audit_logs.';

-- =============================================================================
-- TABLE: dvrs
-- =============================================================================

CREATE TABLE IF NOT EXISTS dvrs (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id             UUID NOT NULL,
    name                VARCHAR(100) NOT NULL,
    brand               VARCHAR(50),            -- Hikvision, Dahua, Axis, etc.
    model               VARCHAR(100),
    ip_address          INET NOT NULL,           -- IPv4 or IPv6 address
    ports               JSONB NOT NULL DEFAULT '{}',
    -- Expected: {"rtsp": 554, "http": 80, "https": 443, "sdk": 8000}
    firmware_version    VARCHAR(50),
    username_encrypted  BYTEA,                    -- AES-256-GCM ciphertext (application-side)
    password_encrypted  BYTEA,                    -- AES-256-GCM ciphertext (application-side)
    status              device_status_enum NOT NULL DEFAULT 'unknown',
    last_seen           TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_dvrs_site
        FOREIGN KEY (site_id)
        REFERENCES sites (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_dvrs_site_id ON dvrs (site_id);
CREATE INDEX IF NOT EXISTS idx_dvrs_ip_address ON dvrs (ip_address);
CREATE INDEX IF NOT EXISTS idx_dvrs_status ON dvrs (status);
CREATE INDEX IF NOT EXISTS idx_dvrs_last_seen ON dvrs (last_seen);

-- Comments
COMMENT ON TABLE dvrs IS 'DVR/NVR device records with encrypted credentials';
COMMENT ON COLUMN dvrs.username_encrypted IS
    'DVR username encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); key kept outside the database. Redacted from audit_logs.';
COMMENT ON COLUMN dvrs.password_encrypted IS
    'DVR password encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); key kept outside the database. Redacted from audit_logs.';
COMMENT ON COLUMN dvrs.ports IS 'JSON port mapping: {protocol: port_number}';

-- Trigger: auto-update updated_at
DROP TRIGGER IF EXISTS trg_dvrs_updated_at ON dvrs;
CREATE TRIGGER trg_dvrs_updated_at
    BEFORE UPDATE ON dvrs
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: cameras
-- =============================================================================

CREATE TABLE IF NOT EXISTS cameras (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    dvr_id          UUID NOT NULL,
    channel_number  INTEGER NOT NULL,           -- Channel/port number on the DVR
    name            VARCHAR(100) NOT NULL,
    location        VARCHAR(200),               -- Physical location description
    rtsp_url        TEXT,                       -- Full RTSP connection URL (no credentials, see comment)
    resolution      VARCHAR(20),                -- 1920x1080, 1280x720, etc.
    fps             INTEGER DEFAULT 25,         -- Frames per second
    status          device_status_enum NOT NULL DEFAULT 'unknown',
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    last_frame_time TIMESTAMPTZ,               -- Last successful frame capture
    config          JSONB NOT NULL DEFAULT '{}',
    -- Expected: {"detection_enabled": true, "sensitivity": 0.8, "min_face_size": 80,
    --            "night_mode": false, "recording_enabled": true, "codec": "h264"}
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_cameras_dvr
        FOREIGN KEY (dvr_id)
        REFERENCES dvrs (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT uq_cameras_dvr_channel UNIQUE (dvr_id, channel_number)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_cameras_dvr_id ON cameras (dvr_id);
CREATE INDEX IF NOT EXISTS idx_cameras_channel_number ON cameras (channel_number);
CREATE INDEX IF NOT EXISTS idx_cameras_status ON cameras (status);
CREATE INDEX IF NOT EXISTS idx_cameras_is_active ON cameras (is_active) WHERE is_active = TRUE;
CREATE INDEX IF NOT EXISTS idx_cameras_config ON cameras USING GIN (config);

-- Comments
COMMENT ON TABLE cameras IS 'Individual camera channels with stream configuration';
COMMENT ON COLUMN cameras.config IS 'Camera-specific detection and recording parameters';
COMMENT ON COLUMN cameras.last_frame_time IS 'Timestamp of last successful frame capture for health monitoring';
COMMENT ON COLUMN cameras.rtsp_url IS
    'RTSP URL without credentials; the application injects the DVR credentials (dvrs.*_encrypted) when connecting. Any user:password@ part is masked in audit_logs.';

-- Trigger: auto-update updated_at
DROP TRIGGER IF EXISTS trg_cameras_updated_at ON cameras;
CREATE TRIGGER trg_cameras_updated_at
    BEFORE UPDATE ON cameras
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: camera_zones
-- =============================================================================

CREATE TABLE IF NOT EXISTS camera_zones (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    camera_id       UUID NOT NULL,
    name            VARCHAR(100) NOT NULL,
    zone_type       zone_type_enum NOT NULL,
    polygon_points  JSONB NOT NULL,
    -- Format: [{"x": 0.1, "y": 0.2}, {"x": 0.5, "y": 0.1}, ...]
    -- Coordinates are normalized (0.0 to 1.0) relative to frame dimensions
    color           VARCHAR(7) DEFAULT '#FF0000',  -- Hex color for UI overlay
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_camera_zones_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_camera_zones_camera_id ON camera_zones (camera_id);
CREATE INDEX IF NOT EXISTS idx_camera_zones_zone_type ON camera_zones (zone_type);
CREATE INDEX IF NOT EXISTS idx_camera_zones_active ON camera_zones (is_active) WHERE is_active = TRUE;

-- Comments
COMMENT ON TABLE camera_zones IS 'Polygon zones within camera FOV for detection rules';
COMMENT ON COLUMN camera_zones.polygon_points IS 'Normalized polygon vertices [{x, y}] in 0.0-1.0 range';
