-- 0024_pipeline_nodes.sql
-- NodeService: pipeline nodes and the camera streams assigned to them.
-- Not in the seeds; explained in storage/SCHEMA.md ("Pipeline nodes and stream assignments"):
--   * pipeline_nodes: one row per registered node (id chosen by the node), its self-description,
--     scheduling state, lease and the figures of its latest heartbeat.
--   * stream_assignments: which node runs which camera (a camera on at most one node).
--   * permission "nodes:configure" (drain, resume, delete) for super_admin, admin and operator;
--     "nodes:read" for operator and viewer. api_client keeps nodes read/write (register, heartbeat, watch).

-- =============================================================================
-- TABLE: pipeline_nodes
-- =============================================================================

CREATE TABLE IF NOT EXISTS pipeline_nodes (
    id                      UUID NOT NULL,              -- generated once by the node, kept across restarts
    name                    VARCHAR(100) NOT NULL,
    hostname                VARCHAR(255),
    backend                 VARCHAR(20) NOT NULL,       -- 'deepstream' | 'portable'
    capacity_streams        INTEGER NOT NULL,           -- never assigned more streams than this
    gpus                    JSONB NOT NULL DEFAULT '[]'::JSONB,   -- [GpuInfo], proto field names
    cpu                     JSONB NOT NULL DEFAULT '{}'::JSONB,   -- CpuInfo
    versions                JSONB NOT NULL DEFAULT '{}'::JSONB,   -- component -> version
    labels                  JSONB NOT NULL DEFAULT '{}'::JSONB,   -- scheduling labels (reserved for placement)
    embedding_model_version VARCHAR(100) NOT NULL,      -- model_versions.version_string (not a FK: not unique alone)
    state                   VARCHAR(10) NOT NULL DEFAULT 'active',
    lease                   INTERVAL NOT NULL,          -- as told to the node at its last registration
    registered_at           TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_heartbeat_at       TIMESTAMPTZ,                -- NULL before the first heartbeat
    stats                   JSONB,                      -- NodeStats of the latest heartbeat
    streams                 JSONB NOT NULL DEFAULT '[]'::JSONB,   -- [StreamStats] of the latest heartbeat
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT pk_pipeline_nodes PRIMARY KEY (id),
    CONSTRAINT chk_pipeline_nodes_name CHECK (length(btrim(name)) >= 1),
    CONSTRAINT chk_pipeline_nodes_backend CHECK (backend IN ('deepstream', 'portable')),
    CONSTRAINT chk_pipeline_nodes_capacity CHECK (capacity_streams BETWEEN 1 AND 10000),
    CONSTRAINT chk_pipeline_nodes_state CHECK (state IN ('active', 'draining', 'offline')),
    CONSTRAINT chk_pipeline_nodes_lease CHECK (lease > INTERVAL '0'),
    CONSTRAINT chk_pipeline_nodes_model_version CHECK (length(embedding_model_version) >= 1),
    CONSTRAINT chk_pipeline_nodes_json CHECK (
        jsonb_typeof(gpus) = 'array' AND jsonb_typeof(cpu) = 'object' AND jsonb_typeof(versions) = 'object'
        AND jsonb_typeof(labels) = 'object' AND jsonb_typeof(streams) = 'array'
        AND (stats IS NULL OR jsonb_typeof(stats) = 'object'))
);

-- ListNodes orders by name; the reconciler scans live nodes for expired leases
CREATE INDEX IF NOT EXISTS idx_pipeline_nodes_name ON pipeline_nodes (name, id);
CREATE INDEX IF NOT EXISTS idx_pipeline_nodes_state ON pipeline_nodes (state);

COMMENT ON TABLE pipeline_nodes IS
    'Registered pipeline nodes (NodeService): self-description, scheduling state, lease, latest heartbeat figures';
COMMENT ON COLUMN pipeline_nodes.lease IS
    'After this long without a heartbeat (or registration) an ACTIVE node is marked offline';

DROP TRIGGER IF EXISTS trg_pipeline_nodes_updated_at ON pipeline_nodes;
CREATE TRIGGER trg_pipeline_nodes_updated_at
    BEFORE UPDATE ON pipeline_nodes
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: stream_assignments
-- One row per camera that a node runs. The primary key on camera_id puts a camera
-- on at most one node; written only by the reconciler (one replica at a time).
-- =============================================================================

CREATE TABLE IF NOT EXISTS stream_assignments (
    camera_id       UUID NOT NULL,
    node_id         UUID NOT NULL,
    assigned_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT pk_stream_assignments PRIMARY KEY (camera_id),
    CONSTRAINT fk_stream_assignments_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_stream_assignments_node
        FOREIGN KEY (node_id)
        REFERENCES pipeline_nodes (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_stream_assignments_node_id ON stream_assignments (node_id);

COMMENT ON TABLE stream_assignments IS
    'Camera streams assigned to pipeline nodes by capacity; a camera runs on at most one node';

GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_nodes, stream_assignments TO vigil_app;

-- =============================================================================
-- Permissions: "nodes" existed since 0019 (read, write: what a node itself calls).
-- Managing nodes (drain, resume, delete) is "nodes:configure", kept apart from
-- "write" so that a node's api_client key cannot drain the fleet.
-- =============================================================================

UPDATE roles SET permissions = jsonb_set(permissions, '{nodes}',
        COALESCE(permissions->'nodes', '{}'::JSONB) || '{"read":true,"configure":true}'::JSONB)
WHERE name IN ('super_admin', 'admin', 'operator');

UPDATE roles SET permissions = jsonb_set(permissions, '{nodes}',
        COALESCE(permissions->'nodes', '{}'::JSONB) || '{"read":true}'::JSONB)
WHERE name = 'viewer';

UPDATE roles SET permissions = jsonb_set(permissions, '{nodes}',
        COALESCE(permissions->'nodes', '{}'::JSONB) || '{"configure":false}'::JSONB)
WHERE name = 'api_client';
